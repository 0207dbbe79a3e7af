"""The pure parts of the Actions side: `bot schedule`'s cron line, the job summary, the result
comment, the lease wait; and the workflows' lint bar (pinned actions, zizmor, no inherited secrets)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.errors import BotError
from bot.github.cli_actions import LEASE_HELD, claim_waiting
from bot.github.schedule import cron_for
from bot.github.summary_md import night_summary, result_text

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = sorted((ROOT / ".github" / "workflows").glob("*.yml")) + [
    ROOT / "examples" / "org-caller.yml", ROOT / "examples" / "flywheel" / ".github" / "workflows" / "nightly.yml"]


def test_the_cron_line_is_spread_by_name_and_stable():
    lines = {cron_for(f"org/repo{i}")[0] for i in range(200)}
    assert len(lines) > 150  # 51 minutes x 6 hours: names rarely share a line
    for i in range(200):
        _, minute, hour = cron_for(f"org/repo{i}")
        assert 5 <= minute <= 55 and 0 <= hour < 6
    assert cron_for("Octo/Night") == cron_for("octo/night")  # GitHub names are case-insensitive
    assert cron_for("octo/night", 22, 8)[2] in (22, 23, 0, 1, 2, 3, 4, 5)


def test_bot_schedule_prints_the_line_and_the_reason():
    result = CliRunner().invoke(cli, ["schedule", "--github", "octo/night"])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert re.fullmatch(r'    - cron: "\d+ \d+ \* \* \*"  # \d\d:\d\d UTC every night, from a hash of octo/night', first)
    assert "start of\nevery hour" in result.output and cron_for("octo/night")[0] in first


def test_bot_schedule_without_a_repository_names_the_fix(tmp_path):
    result = CliRunner().invoke(cli, ["schedule", "--repo", str(tmp_path)])
    assert result.exit_code == 1 and "--github OWNER/NAME" in result.output


def rows():
    return [
        {"id": 0, "status": "keep", "metric": 3.5, "description": "baseline", "finished_at": "2026-05-01T00:10:00+00:00"},
        {"id": 1, "status": "discard", "metric": 3.6, "description": "WIDTH 64 -> 96", "pr": 4,
         "finished_at": "2026-05-02T01:30:00+00:00"},
        {"id": 2, "status": "keep", "metric": 3.4, "description": "LR | 0.04 -> 0.06", "pr": 5,
         "finished_at": "2026-05-02T01:40:00+00:00"},
        {"id": 3, "status": "crash", "metric": None, "description": "bad", "pr": 6, "finished_at": "2026-05-02T01:50:00+00:00"},
        {"id": 4, "kind": "request", "status": "note", "finished_at": "2026-05-02T01:55:00+00:00"},
    ]


def test_the_job_summary_has_the_nights_table_and_best_delta():
    text = night_summary(rows(), "2026-05-02T01:23:00Z", "val_bpb", "minimize", {"full table": "https://x/results.tsv"})
    assert text.startswith("## autoresearch: 3 run(s) tonight\n")
    assert "1 keep, 1 discard, 1 crash" in text
    assert "**Best delta: -0.100000** val_bpb (3.500000 → 3.400000, lower is better), experiment 0002." in text
    assert "| 0001 | experiment | discard | 3.600000 | +0.100000 | #4 | WIDTH 64 -> 96 |" in text
    assert "| 0003 | experiment | crash | — | — | #6 | bad |" in text
    assert "LR \\| 0.04" in text  # a pipe in a description does not break the table
    assert "[full table](https://x/results.tsv)" in text and "0000" not in text.split("|---|")[1]


def test_a_night_without_a_keep_says_so_and_the_direction():
    text = night_summary(rows()[:2], "2026-05-02T00:00:00Z", "f1", "maximize", {})
    assert "**No improvement tonight**; the head stays at f1 3.500000 (higher is better)." in text


def test_the_result_comment_names_the_outcome():
    request = {"command": "retry", "by": "writer"}
    row = {"id": 7, "status": "discard", "reason": "inside the noise", "metric": 3.45, "samples": [3.4, 3.5]}
    text = result_text(request, row, "val_bpb", "minimize")
    assert text.startswith("`/autoresearch retry` (asked by @writer) ran as experiment 0007: **discard** — inside the noise")
    assert "val_bpb 3.450000 over 2 samples (lower is better)" in text


def test_a_command_run_waits_for_the_nights_lease_then_claims():
    attempts, clock = [], [0.0]

    def claim():
        attempts.append(clock[0])
        if len(attempts) < 3:
            raise BotError(f"{LEASE_HELD} on the ledger branch: a night, since 01:23")
        return "claimed"

    def sleep(seconds):
        clock[0] += seconds

    assert claim_waiting(claim, 600, sleep=sleep, clock=lambda: clock[0], say=lambda line: None) == "claimed"
    assert attempts == [0.0, 30.0, 60.0]
    def held():
        raise BotError(f"{LEASE_HELD}: x")

    def other():
        raise BotError("no token")

    with pytest.raises(BotError, match="holds this tag's lease"):  # past the wait: the error, as before
        claim_waiting(held, 45, sleep=sleep, clock=lambda: clock[0], say=lambda line: None)
    started = clock[0]
    with pytest.raises(BotError, match="no token"):  # any other error is not waited on
        claim_waiting(other, 600, sleep=sleep, clock=lambda: clock[0])
    assert clock[0] == started


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_third_party_actions_are_pinned_to_a_commit_with_its_release(path):
    for line in path.read_text().splitlines():
        match = re.match(r"\s*(?:- )?uses: (\S+)", line)
        if not match or match.group(1).startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match.group(1)), line
        assert re.search(r"#\s*(v\d+\.\d+\.\d+|the commit you reviewed)", line), line
    assert not re.search(r"^\s*secrets: inherit", path.read_text(), re.M)


def test_the_retired_cache_action_is_gone():
    flywheel = (ROOT / "examples" / "flywheel" / ".github" / "workflows" / "nightly.yml").read_text()
    assert "6849a6489940f00c2f30c0fb92c6274307ccb58a" not in flywheel  # v4.1.2: the old cache service, retired
    assert "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae  # v5.0.5" in flywheel


def _tool(name):
    """A lint tool of the test extra: beside this interpreter (its venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]' installs it"
    return found


def test_zizmor_finds_nothing():
    files = [str(p.relative_to(ROOT)) for p in WORKFLOW_FILES]
    done = subprocess.run([_tool("zizmor"), "--offline", *files], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "No findings to report" in done.stdout + done.stderr, done.stdout + done.stderr
    for path in WORKFLOW_FILES:  # an ignore carries its reason on the same line
        for line in path.read_text().splitlines():
            if "zizmor: ignore[" in line:
                assert re.search(r"zizmor: ignore\[[\w-]+\] \S.{10,}", line), line


def test_every_workflow_matches_githubs_workflow_schema():
    files = [str(p.relative_to(ROOT)) for p in WORKFLOW_FILES]
    done = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok -- validation done" in done.stdout, done.stdout + done.stderr
