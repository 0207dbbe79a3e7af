"""The loop end to end with the real train.py and prepare.py training on this CPU."""

import shlex
import sys

from conftest import REPO_ROOT, LoopRun, git, make_repo
from gpu_jobs.sandbox import probe


def test_real_training_runs_are_measured_by_the_harness_and_secrets_stay_out(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "x")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "y")
    repo = make_repo(tmp_path / "repo", {name: (REPO_ROOT / name).read_text() for name in ("train.py", "prepare.py")})
    # The real train.py, started through a shell that first prints the environment it got.
    command = f"sh -c {shlex.quote(f'env; exec {sys.executable} train.py')}"
    # a generous start-up allowance: this test checks the measurement, not the budget on a loaded CI box
    run = LoopRun(repo, budget_seconds=2, timeout_seconds=120, harness=["prepare.py"], command=command,
                  startup_seconds=60)
    run.run(iterations=2)

    records = run.records()
    assert [r["kind"] for r in records] == ["baseline", "experiment", "experiment"]
    for record in records:
        assert record["status"] in ("keep", "discard"), record["reason"]
        assert record["metric_source"] == "harness"
        assert 0 < record["metric"] < 8.0  # below a uniform guess over 256 bytes
        assert record["summary"]["num_steps"] > 1
        sandboxed = "bwrap" if probe()[0] else "none"
        assert record["key"]["device"] == "cpu" and record["key"]["isolation"] == sandboxed
        assert record["isolation"] == sandboxed and record["timings"]["eval_s"] > 0
        assert len(record["key"]["harness_sha256"]["prepare.py"]) == 64
    # the proposer moved CPU constants or shared ones, never a GPU-only one
    for record in records[1:]:
        name = record["change"]["name"]
        assert name.startswith("CPU_") or f"CPU_{name}" not in (REPO_ROOT / "train.py").read_text()
    head = git(repo, "rev-parse", "autoresearch/default")
    assert head == [r for r in records if r["status"] == "keep"][-1]["commit"]

    environment = (repo / ".autoresearch/default/logs/0000.log").read_text()
    assert "GITHUB_TOKEN" not in environment and "MODAL_TOKEN_SECRET" not in environment
    assert "AUTORESEARCH_BUDGET_SECONDS=2.0" in environment


def test_a_step_budget_trains_exactly_that_many_counted_steps_and_is_part_of_the_key(tmp_path):
    repo = make_repo(tmp_path / "repo", {name: (REPO_ROOT / name).read_text() for name in ("train.py", "prepare.py")})
    # budget_seconds 1 would stop a wall-clock run long before 6 steps on a loaded machine; the steps decide
    run = LoopRun(repo, budget_seconds=1, budget_steps=6, timeout_seconds=120, harness=["prepare.py"],
                  replicates=1)
    run.run(iterations=1)
    records = run.records()
    for record in records:
        assert record["status"] in ("keep", "discard"), record["reason"]
        assert record["summary"]["num_steps"] == 7  # 6 counted + the first, uncounted one
        assert record["key"]["budget_steps"] == 6
    log = (repo / ".autoresearch/default/logs/0000.log").read_text()
    assert "step 00006 (100.0%)" in log
