"""Each example runs by its README: the README's own shell commands, run with bash in a fresh
HOME, with real git and the real `bot` console script of this environment.

The commands are read from the README's ```bash blocks, so the instructions and the test
cannot drift apart. Each example takes a few seconds (baseline + 3 experiments).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.proposal import is_editable
from conftest import REPO_ROOT, git

EXAMPLES = {  # name: (directory the README copies to, metric, direction)
    "speed": ("templite-speed", "time_us", "minimize"),
    "assertions": ("blurbs", "score", "maximize"),
    "flywheel": ("churn", "f1", "maximize"),
}
STATUSES = {"keep", "discard", "crash", "gate-failed"}


def bash_blocks(readme):
    return re.findall(r"^```bash\n(.*?)^```", readme.read_text(), re.MULTILINE | re.DOTALL)


def run_block(block, home):
    """Run README commands as a user would: from the checkout's root, with `bot` on PATH."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "bot").exists():
        pytest.fail(f"no `bot` script next to {sys.executable}: run `pip install -e .` in {REPO_ROOT}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTORESEARCH_", "GIT_"))}
    env.update(HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
               GIT_AUTHOR_NAME="Example User", GIT_AUTHOR_EMAIL="user@example.com",
               GIT_COMMITTER_NAME="Example User", GIT_COMMITTER_EMAIL="user@example.com",
               GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def ledger(repo, tag):
    lines = (repo / ".autoresearch" / tag / "experiments.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def check_run(repo, config, all_records, metric, direction, first=0):
    """What every example run must leave: a measured baseline, experiments on editable files only.

    `first`: where the segment under test starts (a new baseline on new data starts one).
    """
    records = all_records[first:]
    assert records[0]["kind"] == "baseline" and records[0]["status"] == "keep"
    assert isinstance(records[0]["metric"], float)
    assert all(r["status"] in STATUSES for r in records)
    assert all(r["metric_name"] == metric for r in records)
    best = None
    for record in records:
        if record["kind"] == "baseline":
            best = record["metric"]
            continue
        changed = git(repo, "diff", "--name-only", record["parent"], record["commit"]).splitlines()
        assert len(changed) == 1 and is_editable(changed[0], config["editable"]), changed
        assert changed[0] not in config["harness"]
        if record["status"] == "keep":
            better = record["metric"] < best if direction == "minimize" else record["metric"] > best
            assert better, record
            best = record["metric"]
    tsv = (repo / ".autoresearch" / config["tag"] / "results.tsv").read_text().splitlines()
    assert tsv[0] == f"commit\t{metric}\tmemory_gb\tstatus\tdescription"
    assert len(tsv) == 1 + len(all_records)
    kept = [r for r in records if r["status"] == "keep"]
    assert git(repo, "rev-parse", f"autoresearch/{config['tag']}") == kept[-1]["commit"]
    assert git(repo, "status", "--porcelain") == "", "the run left the working tree dirty"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_by_its_readme(tmp_path, name):
    directory, metric, direction = EXAMPLES[name]
    template = REPO_ROOT / "examples" / name
    config = yaml.safe_load((template / "autoresearch.yaml").read_text())
    assert (config["direction"], (template / "program.md").exists()) == (direction, True)
    blocks = bash_blocks(template / "README.md")
    assert blocks and f"cp -r examples/{name} ~/{directory}" in blocks[0]
    assert "bot run --local --iterations 3" in blocks[0]

    done = run_block(blocks[0], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Optimizing {metric} ({direction}); gate: `python -m unittest -q`" in done.stdout
    assert "Stopped: finished 3 experiment(s)" in done.stdout, done.stdout
    repo = tmp_path / directory
    records = ledger(repo, config["tag"])
    assert [r["kind"] for r in records] == ["baseline"] + ["experiment"] * 3
    check_run(repo, config, records, metric, direction)
    for record in records:
        assert "gate_s" in record["timings"], "the gate ran before every measurement"

    if name == "flywheel":  # the README's second block: new labeled rows, then retrain
        assert len(blocks) == 2 and "make_data.py --new-rows" in blocks[1]
        again = run_block(f"cd ~/{directory}\n" + blocks[1], tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        records = ledger(repo, config["tag"])
        baselines = [r for r in records if r["kind"] == "baseline"]
        assert len(baselines) == 2 and len(records) == 4 + 1 + 2
        before, after = (b["key"]["harness_sha256"]["data/customers.csv"] for b in baselines)
        assert before != after, "new rows changed the frozen data's hash: a new comparison segment"
        assert baselines[1]["summary"]["rows"] == baselines[0]["summary"]["rows"] + 200
        assert git(repo, "log", "-1", "--format=%s", baselines[1]["commit"]) == "data: 200 newly labeled rows"
        check_run(repo, config, records, metric, direction, first=4)
        assert "Baseline 0004: measuring the tracking head" in again.stdout
        status = run_block(f"cd ~/{directory} && bot status", tmp_path)
        assert "vs baseline 0004; rows before it were measured under other settings or data" in status.stdout


def test_the_flywheel_schedule_runs_the_readme_steps_nightly():
    workflow = yaml.safe_load((REPO_ROOT / "examples/flywheel/.github/workflows/nightly.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert crons and all(len(cron.split()) == 5 and cron.split()[2:] == ["*", "*", "*"] for cron in crons)
    steps = workflow["jobs"]["retrain"]["steps"]
    scripts = "\n".join(step.get("run", "") for step in steps)
    for command in ("git switch autoresearch/flywheel", "python make_data.py --new-rows",
                    "git add data/customers.csv", "bot run --local", "push origin"):
        assert command in scripts, command
    checkout = next(step for step in steps if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False, "experiments must not see the token"
    run_steps = [step for step in steps if "bot run" in step.get("run", "")]
    assert all("env" not in step for step in run_steps)


@pytest.mark.parametrize("gate, status, reason", [
    ("python -m unittest -q", "gate-failed", "the gate `python -m unittest -q` failed with exit code 1"),
    ("", "crash", "exited with code 1: fingerprint"),  # without the gate the fingerprint still catches it
])
def test_speed_faster_but_wrong_is_never_a_result(tmp_path, gate, status, reason):
    from gpu_jobs.job import JobSpec, run_job

    source = tmp_path / "src"
    shutil.copytree(REPO_ROOT / "examples" / "speed", source)
    renderer = source / "templite" / "renderer.py"
    renderer.write_text(renderer.read_text().replace("ESCAPE_QUOTES = 1", "ESCAPE_QUOTES = 0"))
    config = yaml.safe_load((source / "autoresearch.yaml").read_text())
    spec = JobSpec(source_dir=str(source), command=config["command"], metric=config["metric"]["name"],
                   metric_regex=config["metric"]["regex"], gate=gate, budget_seconds=0.2,
                   timeout_seconds=30, gate_timeout_seconds=30)
    result = run_job(spec, environ={k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")})
    assert result["status"] == status
    assert result["reason"].startswith(reason) if gate else reason in result["reason"]
    assert result["metric"] is None
