"""The loop end to end: real git repositories, real subprocess runs of a toy train.py."""

import os
import signal
import subprocess
import sys
import time

import pytest

from bot.errors import BotError, RepoError
from conftest import LoopRun, git, make_repo


def test_baseline_then_experiments_keep_moves_tracking_and_discards_stay_reachable(toy_repo):
    repo = toy_repo()
    run = LoopRun(repo)
    outcome = run.run(iterations=4)

    records = run.records()
    assert [r["id"] for r in records] == [0, 1, 2, 3, 4]
    assert records[0]["kind"] == "baseline" and records[0]["status"] == "keep"
    statuses = [r["status"] for r in records[1:]]
    assert "keep" in statuses and "discard" in statuses
    kept = [r for r in records if r["status"] == "keep"]
    assert git(repo, "rev-parse", "autoresearch/default") == kept[-1]["commit"]
    assert outcome["best"]["commit"] == kept[-1]["commit"]
    for record in records[1:]:
        assert git(repo, "rev-parse", record["branch"]) == record["commit"]
        assert record["parent"] is not None
        # the experiment commit changes exactly the file the proposal named
        changed = git(repo, "diff", "--name-only", record["parent"], record["commit"])
        assert changed == "train.py"
        assert record["description"] in git(repo, "log", "-1", "--format=%B", record["commit"])
    tsv = (repo / ".autoresearch/default/results.tsv").read_text().splitlines()
    assert tsv[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert len(tsv) == 1 + 5
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_each_keep_is_strictly_better_than_the_head_it_replaced(toy_repo):
    run = LoopRun(toy_repo())
    run.run(iterations=6)
    best = None
    for record in run.records():
        if record["status"] == "keep":
            assert best is None or record["metric"] < best
            best = record["metric"]
        elif record["status"] == "discard":
            assert record["metric"] >= best


def test_second_run_resumes_without_a_new_baseline(toy_repo):
    repo = toy_repo()
    LoopRun(repo).run(iterations=2)
    again = LoopRun(repo)
    again.run(iterations=2)
    assert "baseline-start" not in again.kinds() and "resume" in again.kinds()
    records = again.records()
    assert [r["id"] for r in records] == [0, 1, 2, 3, 4]
    assert sum(r["kind"] == "baseline" for r in records) == 1
    descriptions = [r["description"] for r in records[1:]]
    assert len(set(descriptions)) == len(descriptions), "a change was proposed twice"


def test_ids_skip_a_branch_left_by_a_killed_run(toy_repo):
    repo = toy_repo()
    LoopRun(repo).run(iterations=1)
    git(repo, "branch", "autoresearch/default-exp/0002", "main")  # as if killed before its row
    run = LoopRun(repo)
    run.run(iterations=1)
    assert [r["id"] for r in run.records()] == [0, 1, 3]


def test_a_keep_whose_branch_move_was_interrupted_is_finished_on_restart(toy_repo):
    repo = toy_repo()
    first = LoopRun(repo)
    first.run(iterations=3)
    kept = [r for r in first.records() if r["kind"] == "experiment" and r["status"] == "keep"][-1]
    git(repo, "update-ref", "refs/heads/autoresearch/default", kept["parent"])  # kill before the move
    again = LoopRun(repo)
    again.run(iterations=1)
    assert "reconciled" in again.kinds() and "baseline-start" not in again.kinds()
    assert again.records()[-1]["parent"] == kept["commit"]


def test_a_new_budget_starts_a_new_baseline(toy_repo):
    repo = toy_repo()
    LoopRun(repo).run(iterations=1)
    changed = LoopRun(repo, budget_seconds=2)
    changed.run(iterations=1)
    assert "baseline-start" in changed.kinds()
    baselines = [r for r in changed.records() if r["kind"] == "baseline"]
    assert [b["key"]["budget_seconds"] for b in baselines] == [1.0, 2.0]


def test_the_experiment_environment_has_no_tokens(toy_repo, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "x")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "y")
    repo = toy_repo()
    run = LoopRun(repo)
    run.run(iterations=1)
    log = (repo / ".autoresearch/default/logs/0001.log").read_text()
    assert "env-check GITHUB_TOKEN present: False" in log
    assert "seed 42 budget 1.0" in log


@pytest.mark.parametrize("behaviour, reason", [
    ("crash", "toy crash: WIDTH does not fit"),
    ("silent", "no `---` summary"),
    ("hang", "timeout"),
])
def test_failing_experiments_become_crash_rows_and_stop_the_run(toy_repo, behaviour, reason):
    repo = toy_repo(behaviour)
    run = LoopRun(repo, timeout_seconds=2, max_consecutive_crashes=2)
    outcome = run.run(iterations=5)
    records = run.records()
    assert [r["status"] for r in records] == ["keep", "crash", "crash"]
    assert reason in records[-1]["reason"]
    assert "2 consecutive crashes" in outcome["stop_reason"] and reason in outcome["stop_reason"]
    tsv = (repo / ".autoresearch/default/results.tsv").read_text().splitlines()
    assert tsv[-1].split("\t")[1:4] == ["0.000000", "0.0", "crash"]
    if behaviour == "crash":
        assert "RuntimeError" in records[-1]["log_tail"]
    # the tracking branch never moved off the baseline
    assert git(repo, "rev-parse", "autoresearch/default") == records[0]["commit"]


def test_a_baseline_that_crashes_at_import_stops_with_the_log_tail(toy_repo):
    run = LoopRun(toy_repo("import-error"))
    with pytest.raises(BotError, match="baseline crashed.*no_such_module_for_the_toy"):
        run.run(iterations=1)
    assert [r["status"] for r in run.records()] == ["crash"]


def test_hours_limit_stops_starting_experiments(toy_repo):
    ticks = iter(range(0, 10**6, 1000))  # each reading 1000 s later
    run = LoopRun(toy_repo())
    outcome = run.run(hours=1, clock=lambda: next(ticks))
    assert "1 h limit" in outcome["stop_reason"]
    assert 1 <= outcome["experiments"] <= 4


@pytest.mark.parametrize("setup, message", [
    ("not-a-repo", "not inside a git repository"),
    ("dirty", "uncommitted changes to train.py"),
    ("no-train", "train.py not found"),
])
def test_bad_repositories_get_errors_that_name_the_fix(tmp_path, toy_repo, setup, message):
    if setup == "not-a-repo":
        with pytest.raises(RepoError, match=message):
            LoopRun(tmp_path)
        return
    if setup == "dirty":
        repo = toy_repo()
        (repo / "train.py").write_text("LR = 1\n")
    else:
        repo = make_repo(tmp_path / "empty", {"README.md": "hi\n"})
    with pytest.raises(RepoError, match=message) as raised:
        LoopRun(repo).run(iterations=1)
    assert "commit" in str(raised.value)
    assert not (repo / ".autoresearch/default/experiments.jsonl").exists()


def test_ctrl_c_kills_the_experiment_records_nothing_and_a_rerun_resumes(toy_repo, tmp_path):
    repo = toy_repo("hang")
    pid_file = tmp_path / "train.pid"
    env = dict(os.environ)
    command = [sys.executable, "-m", "bot", "run", "--local", "--iterations", "3", "--budget", "1"]
    # Unsandboxed, so that train.py's pid is this machine's (in the sandbox the whole pid namespace dies);
    # the shell writes its pid, which exec hands to train.py.
    (repo / "autoresearch.yaml").write_text(
        "harness: []\ntimeout_seconds: 120\nisolation: none\n"
        f"command: sh -c 'echo $$ > {pid_file}; exec {sys.executable} train.py'\n")
    git(repo, "add", "autoresearch.yaml")
    git(repo, "commit", "-q", "-m", "settings")
    bot = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    deadline = time.monotonic() + 60
    ledger = repo / ".autoresearch/default/experiments.jsonl"
    while time.monotonic() < deadline:  # wait for the baseline row, then the hanging experiment
        if ledger.exists() and pid_file.exists() and pid_file.stat().st_mtime > ledger.stat().st_mtime:
            break
        time.sleep(0.1)
    else:
        bot.kill()
        pytest.fail("the experiment never started")
    time.sleep(0.5)
    train_pid = int(pid_file.read_text())
    bot.send_signal(signal.SIGINT)
    output, _ = bot.communicate(timeout=60)
    assert bot.returncode == 130, output
    assert "Interrupted" in output and "not recorded" in output
    with pytest.raises(ProcessLookupError):
        os.kill(train_pid, 0)
    lines = ledger.read_text().splitlines()
    assert len(lines) == 1  # the baseline only; the stopped experiment left no row
    assert git(repo, "branch", "--list", "autoresearch/default-exp/*") == ""
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    again = LoopRun(repo, timeout_seconds=2, max_consecutive_crashes=1, isolation="none",
                    command=f"sh -c 'echo $$ > {pid_file}; exec {sys.executable} train.py'")
    again.run(iterations=1)
    assert "baseline-start" not in again.kinds()
    assert [r["id"] for r in again.records()] == [0, 1]
