"""`bot reproduce`: fresh seeds for an experiment's exact commit, pooled with its runs."""

import re

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.errors import BotError
from bot.replicates import run_seed
from bot.reproduce import reproduce
from conftest import LoopRun, ScriptedRunner, git


def started(toy_repo, script, **settings):
    repo = toy_repo()
    run = LoopRun(repo, decision_rule="noise-aware", replicates=3, **settings)
    runner = ScriptedRunner(script)
    run.run(iterations=1, runner=runner)
    return repo, run, runner


def test_reproducing_a_lucky_keep_pools_the_samples_and_says_it_no_longer_holds(toy_repo):
    # baseline [3.50, 3.52, 3.48]; experiment 1 kept on 3.40 and topped up with 3.44, 3.45;
    # then two fresh seeds give 3.55, 3.53: pooled mean 3.474 is within the noise of 3.50
    repo, run, runner = started(toy_repo, [3.50, 3.52, 3.48, 3.40, 3.44, 3.45])
    assert run.records()[1]["status"] == "keep"
    runner.metrics += [3.55, 3.53]
    loop = run.loop(runner=runner)
    row = reproduce(loop, 1, runs=2)
    assert row["kind"] == "reproduce" and row["of"] == 1 and row["status"] == "reproduced"
    assert row["commit"] == run.records()[1]["commit"]
    assert row["evidence"]["pooled"] == [3.40, 3.44, 3.45, 3.55, 3.53]
    assert row["evidence"]["verdict"] == "discard" and "not beyond the noise" in row["reason"]
    assert runner.seeds[-2:] == [run_seed(42, 2, 1), run_seed(42, 2, 2)]  # fresh, never the configured seed
    assert [r["id"] for r in run.records()] == [0, 1, 2]
    assert "reproduced" not in (repo / ".autoresearch/default/results.tsv").read_text()
    # the head's reproduce runs count in "best before" of the next experiment
    runner.metrics += [3.49]
    run.run(iterations=1, runner=runner)
    assert run.records()[-1]["evidence"]["n_before"] == 5
    assert git(repo, "rev-parse", "autoresearch/default") == run.records()[1]["commit"]


@pytest.mark.parametrize(
    "exp_id, changed, message",
    [(7, {}, "no experiment 0007 in the ledger (ids: 0000, 0001)"),
     (1, {"budget_seconds": 2}, "budget_seconds: 1 then, 2 now): its numbers cannot be pooled with new runs; rerun with the settings it used (e.g. `bot reproduce 1 --local --budget 1`)")],
    ids=["unknown-id", "other-settings"],
)
def test_reproduce_refusals(toy_repo, exp_id, changed, message):
    repo, run, runner = started(toy_repo, [3.50, 3.52, 3.48, 3.60])
    other = LoopRun(repo, decision_rule="noise-aware", replicates=3, **changed)
    with pytest.raises(BotError, match=re.escape(message)):
        reproduce(other.loop(runner=runner), exp_id, runs=1)
    assert runner.metrics == []  # no run was spent


def test_reproduce_command_on_real_runs(toy_repo):
    repo = toy_repo(extra={"autoresearch.yaml": "harness: []\nreplicates: 2\n"})
    runner = CliRunner()
    assert runner.invoke(cli, ["run", "--local", "--iterations", "1", "--budget", "1", "--repo", str(repo)]).exit_code == 0
    result = runner.invoke(cli, ["reproduce", "0", "--local", "--budget", "1", "--runs", "1", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "Reproducing 0000" in result.output and "pooled 3 run(s)" in result.output


def test_resume_measures_a_head_with_too_few_runs_before_the_next_experiment(toy_repo):
    repo = toy_repo()
    LoopRun(repo, replicates=1).run(iterations=0, runner=ScriptedRunner([3.50]))  # one-run baseline
    again = LoopRun(repo, replicates=3)
    runner = ScriptedRunner([3.52, 3.48, 3.60])
    again.run(iterations=1, runner=runner)
    records = again.records()
    assert [(r["kind"], r["status"]) for r in records] == [
        ("baseline", "keep"), ("reproduce", "reproduced"), ("experiment", "discard")]
    assert records[1]["of"] == 0 and len(records[1]["replicates"]) == 2
    assert records[2]["evidence"]["n_before"] == 3
    assert records[2]["evidence"]["best_before"] == pytest.approx(3.50)
    assert "reproduce-start" in again.kinds()
