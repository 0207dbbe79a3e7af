"""Issue #14's first items: a harness that is missing or also editable, two runs on one tag,
SIGTERM of a running bot (real processes: nothing may survive it)."""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from conftest import TOY_TRAIN, make_repo

from bot.cli import cli
from bot.config import parse_config
from bot.errors import ConfigError
from bot.runlock import RunLock
from bot.scratch import make, remove_stale

SETTINGS = "budget_seconds: 1\ntimeout_seconds: 60\nharness: []\ndecision_rule: greedy\nreplicates: 1\n"


def bot(repo, *args):
    return CliRunner().invoke(cli, [*args, "--repo", str(repo)], catch_exceptions=False)


@pytest.mark.parametrize("settings, message", [
    ({"editable": ["train.py"], "harness": ["train.py"]}, "train.py is both frozen"),
    ({"editable": ["*.py"], "harness": ["prepare.py"]}, "prepare.py is both frozen"),
    ({"editable": ["src/**"], "harness": ["src/eval/score.py"]}, "src/eval/score.py is both frozen"),
], ids=["same-file", "glob", "double-star"])
def test_a_harness_file_that_is_also_editable_is_a_config_error(settings, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(settings)


def test_a_missing_harness_file_stops_before_any_run(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN.format(behaviour="ok"),
                                         "autoresearch.yaml": SETTINGS.replace("harness: []", "harness: [prepare.py]")})
    result = bot(repo, "run", "--local", "--iterations", "1")
    assert result.exit_code == 1
    assert "harness file(s) prepare.py are not on autoresearch/default" in result.output
    assert "harness: []" in result.output  # names the other way out
    assert not (repo / ".autoresearch" / "default" / "experiments.jsonl").exists()


def test_a_second_run_on_the_same_tag_exits_naming_the_first(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN.format(behaviour="ok"), "autoresearch.yaml": SETTINGS})
    held = RunLock(repo / ".autoresearch" / "default", "default").acquire("bot run")
    try:
        result = bot(repo, "run", "--local", "--iterations", "1")
        assert result.exit_code == 1
        assert f"another bot run is using tag default in this repository (pid {os.getpid()}" in result.output
        assert not (repo / ".autoresearch" / "default" / "experiments.jsonl").exists()
        other_tag = bot(repo, "run", "--local", "--iterations", "1", "--tag", "other")
        assert other_tag.exit_code == 0, other_tag.output
    finally:
        held.release()
    # released (as when its process ends, however it ends): the next run proceeds
    assert bot(repo, "run", "--local", "--iterations", "1").exit_code == 0


def test_sigterm_stops_the_run_and_its_training(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN.format(behaviour="hang"), "autoresearch.yaml": SETTINGS})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "AUTORESEARCH_"))}
    env["TMPDIR"] = str(scratch)  # the experiment's scratch copy, and so its processes, live under here
    process = subprocess.Popen([sys.executable, "-m", "bot", "run", "--local", "--iterations", "2", "--repo", str(repo)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        log = repo / ".autoresearch" / "default" / "logs" / "0001.log"
        while time.monotonic() < deadline and not (log.exists() and "budget" in log.read_text()):
            time.sleep(0.2)  # the first experiment (which hangs once a constant moved) is training
        assert log.exists(), "the first experiment never started"
        assert _processes_under(scratch), "no training process found to stop"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "Interrupted: experiment 0001 was stopped and not recorded" in output
    time.sleep(0.5)
    assert _processes_under(scratch) == []  # nothing left running
    rows = (repo / ".autoresearch" / "default" / "experiments.jsonl").read_text().splitlines()
    assert len(rows) == 1  # the baseline; the stopped experiment recorded nothing


def test_the_lock_is_held_while_a_run_trains(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN.format(behaviour="hang"), "autoresearch.yaml": SETTINGS})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "AUTORESEARCH_"))}
    process = subprocess.Popen([sys.executable, "-m", "bot", "run", "--local", "--iterations", "2", "--repo", str(repo)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        log = repo / ".autoresearch" / "default" / "logs" / "0001.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not log.exists():
            time.sleep(0.2)
        second = bot(repo, "run", "--local", "--iterations", "1")
        assert second.exit_code == 1 and f"(pid {process.pid} on" in second.output
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.parametrize("isolation", ["none", "auto"])
def test_kill_9_of_the_bot_leaves_no_training_running(tmp_path, isolation):
    repo = make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN.format(behaviour="hang"), "autoresearch.yaml": SETTINGS})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "AUTORESEARCH_"))}
    env.update(TMPDIR=str(scratch), AUTORESEARCH_ISOLATION=isolation)
    process = subprocess.Popen([sys.executable, "-m", "bot", "run", "--local", "--iterations", "2", "--repo", str(repo)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        log = repo / ".autoresearch" / "default" / "logs" / "0001.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (log.exists() and "budget" in log.read_text()):
            time.sleep(0.2)
        assert _processes_under(scratch), "no training process found"
    finally:
        process.kill()
        process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _processes_under(scratch) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _processes_under(scratch)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []
    # its scratch copy is still there (kill -9 skips every cleanup); the next run removes it
    stale = [str(p) for p in scratch.glob("autoresearch-0001-*")]
    assert len(stale) == 1
    assert remove_stale(scratch) == stale and list(scratch.glob("autoresearch-*")) == []


def _processes_under(folder):
    """Processes whose command line names `folder` or that run inside it."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                named = str(folder).encode() in handle.read()
            inside = os.readlink(f"/proc/{pid}/cwd").startswith(str(folder))
        except OSError:
            continue
        if named or inside:
            found.append(int(pid))
    return found


def test_only_scratch_directories_of_dead_owners_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    mine = make(7)  # this process: alive
    dead = make(8)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (dead / "owner").write_text(f"{child.stdout.strip()} {__import__('socket').gethostname()}\n")
    elsewhere = make(9)
    (elsewhere / "owner").write_text("1 another-host\n")
    foreign = tmp_path / "autoresearch-0010-notours"
    foreign.mkdir()  # no owner file: not ours to remove
    assert remove_stale() == [str(dead)]
    assert mine.exists() and elsewhere.exists() and foreign.exists() and not dead.exists()


def test_a_crashed_baseline_fixed_on_main_is_measured_again(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN.format(behaviour="import-error"),
                                         "autoresearch.yaml": SETTINGS})
    first = bot(repo, "run", "--local", "--iterations", "1")
    assert first.exit_code == 1 and "the baseline crashed" in first.output
    (repo / "train.py").write_text(TOY_TRAIN.format(behaviour="ok"))
    subprocess.run(["git", "commit", "-qam", "fix the import"], cwd=repo, check=True)
    fixed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    second = bot(repo, "run", "--local", "--iterations", "1")
    assert second.exit_code == 0, second.output
    assert "Moved tracking branch autoresearch/default from" in second.output and fixed[:7] in second.output
    rows = [__import__("json").loads(line) for line in
            (repo / ".autoresearch" / "default" / "experiments.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["status"]) for r in rows[:2]] == [("baseline", "crash"), ("baseline", "keep")]
    assert rows[1]["commit"] == fixed


def test_the_tracking_branch_stays_once_it_holds_a_keep(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN.format(behaviour="ok"), "autoresearch.yaml": SETTINGS})
    assert bot(repo, "run", "--local", "--iterations", "2").exit_code == 0  # the toy's first changes are kept
    tracking = subprocess.run(["git", "rev-parse", "autoresearch/default"], cwd=repo, capture_output=True,
                              text=True).stdout.strip()
    (repo / "notes.txt").write_text("unrelated\n")
    subprocess.run(["git", "add", "notes.txt"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "notes"], cwd=repo, check=True)
    again = bot(repo, "run", "--local", "--iterations", "1")
    assert again.exit_code == 0 and "Moved tracking branch" not in again.output
    rows = [__import__("json").loads(line) for line in
            (repo / ".autoresearch" / "default" / "experiments.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "experiment" and r["status"] == "keep" and r["commit"] == tracking for r in rows)
    assert subprocess.run(["git", "rev-parse", "autoresearch/default"], cwd=repo, capture_output=True,
                          text=True).stdout.strip() != subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo,
                                                                      capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("event", ["[1, 2]", "{}", '{"comment": "text", "issue": {}}', '"created"'],
                         ids=["array", "empty", "comment-not-object", "string"])
def test_an_event_file_that_is_no_comment_event_is_a_clear_error(tmp_path, event):
    repo = make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN.format(behaviour="ok"), "autoresearch.yaml": SETTINGS})
    path = tmp_path / "event.json"
    path.write_text(event)
    result = CliRunner().invoke(cli, ["command", "--event", str(path), "--local", "--repo", str(repo)])
    assert result.exit_code == 1 and "is not an issue_comment event" in result.output
    assert "Traceback" not in result.output and "None" not in result.output


@pytest.mark.parametrize("tag", ["x-exp", "nightly-ledger"])
def test_a_tag_that_collides_with_the_bots_branch_names_is_refused(tag):
    with pytest.raises(ConfigError, match="ends like the bot's own branch names"):
        parse_config({"tag": tag})


def test_no_commits_names_the_configured_files(tmp_path):
    repo = tmp_path / "empty"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "autoresearch.yaml").write_text("editable: [model.py]\nharness: [score.py]\n")
    result = bot(repo, "run", "--local", "--iterations", "1")
    assert result.exit_code == 1 and "commit model.py, score.py first" in result.output
    assert "train.py" not in result.output


def test_status_counts_crashed_baselines():
    from bot.report import summary_line

    records = [{"id": 0, "kind": "baseline", "status": "crash", "metric": None, "description": "baseline"},
               {"id": 1, "kind": "baseline", "status": "crash", "metric": None, "description": "baseline"}]
    assert summary_line(records) == "0 experiment(s): 0 kept, 0 discarded, 0 crashed; 2 baseline(s) crashed"


def test_bot_report_without_matplotlib_writes_the_markdown(tmp_path, monkeypatch):
    import importlib.util

    from click.testing import CliRunner

    from bot.cli import cli
    from bot.ledger import Ledger

    repo = make_repo(tmp_path / "r", {"train.py": "X = 1\n"})
    Ledger(repo / ".autoresearch" / "default").append(
        {"id": 0, "kind": "baseline", "status": "keep", "metric": 3.5, "commit": "a" * 40, "description": "baseline",
         "replicates": [{"seed": 1, "status": "ok", "metric": 3.5, "total_s": 1.0}]})
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    result = CliRunner().invoke(cli, ["report", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "needs matplotlib" in result.output and (repo / ".autoresearch" / "default" / "report.md").is_file()
    assert not (repo / ".autoresearch" / "default" / "progress.png").exists()


def test_the_progress_bar_shows_time_left_and_messages_get_their_own_line():
    import io

    from bot.cli_output import ProgressBar, printer

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    now = [100.0]
    stream = Terminal()
    bar = ProgressBar(stream, clock=lambda: now[0])
    bar.start("LR 0.04 -> 0.06")
    now[0] += 30
    bar.on_line("step 00010 (25.0%) | loss: 3.2")
    assert "~90 s left" in stream.getvalue().rsplit("\r", 1)[-1]
    on_event = printer(bar, "val_bpb")
    on_event("warning", message="something")
    assert stream.getvalue().endswith("\r" + " " * 100 + "\r")  # cleared before the message is written


def test_finished_confirmation_runs_survive_a_kill(toy_repo):
    """Killed during experiment 1's second run: the next start takes its first run back (the same
    change proposed again on the same head) instead of training it again."""
    from bot.loop import Interrupted
    from conftest import LoopRun, ScriptedRunner

    class KilledAt(ScriptedRunner):
        def __init__(self, metrics, kill_at):
            super().__init__(metrics)
            self.kill_at = kill_at

        def submit(self, experiment):
            if len(self.seeds) == self.kill_at:
                return Killed()
            return super().submit(experiment)

    class Killed:  # the stop arrives while the run trains
        def result(self, timeout=None):
            raise KeyboardInterrupt

        def cancel(self):
            pass

    repo = toy_repo()
    run = LoopRun(repo, decision_rule="noise-aware", replicates=3, max_samples=3)
    # baseline 3.50, 3.52, 3.48; the experiment's first run 3.45 is promising, so it is confirmed
    first = KilledAt([3.50, 3.52, 3.48, 3.45], kill_at=4)
    with pytest.raises(Interrupted):
        run.run(iterations=1, runner=first)
    assert [r["kind"] for r in run.records()] == ["baseline"]
    again = ScriptedRunner([3.44, 3.46, 3.45])
    run.run(iterations=1, runner=again)
    record = run.records()[-1]
    assert record["kind"] == "experiment"
    seeds = [r["seed"] for r in record["replicates"]]
    assert seeds[0] == first.seeds[3] and seeds[1:] == again.seeds[:len(seeds) - 1]  # run 1 taken back, not rerun
    assert [r["metric"] for r in record["replicates"]][0] == 3.45
    assert ("run-reused" in run.kinds())
    assert not (repo / ".autoresearch" / "default" / "unrecorded-runs.jsonl").exists()  # the row cleared it
