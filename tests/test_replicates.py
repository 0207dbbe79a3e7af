"""Seed replicates in the loop: baseline replicates, confirmations, the head re-measured
after a keep, pooled reproduce samples; seeds reaching the real training process."""

import pytest

from bot.replicates import head_values, run_seed, sample_values, segment_sigma
from conftest import LoopRun, ScriptedRunner, git


@pytest.mark.parametrize("base, exp_id, replicate", [(42, 0, 0), (42, 7, 0), (7, 3, 0)])
def test_first_replicate_uses_the_configured_seed(base, exp_id, replicate):
    assert run_seed(base, exp_id, replicate) == base


def test_further_replicates_get_distinct_fresh_seeds():
    seeds = {run_seed(42, exp_id, r) for exp_id in range(50) for r in range(1, 4)}
    assert len(seeds) == 150 and 42 not in seeds
    assert run_seed(42, 3, 2) == run_seed(42, 3, 2)  # deterministic: both rules see the same seeds


def ok(metric, seed=1):
    return {"seed": seed, "status": "ok", "metric": metric, "total_s": 1.0}


@pytest.mark.parametrize(
    "record, values",
    [({"metric": 3.5}, [3.5]),  # written before replicates existed
     ({"metric": None}, []),
     ({"metric": 3.4, "replicates": [ok(3.3), ok(3.5)]}, [3.3, 3.5]),
     ({"metric": 3.4, "replicates": [ok(3.4), {"seed": 2, "status": "crash", "metric": None}]}, [3.4]),
     ({"metric": 3.4, "replicates": []}, [3.4])],
    ids=["legacy", "legacy-crash", "replicates", "crashed-replicate", "empty-list"],
)
def test_sample_values(record, values):
    assert sample_values(record) == values


def test_head_values_pool_reproduce_runs_of_the_same_commit():
    head = {"id": 3, "commit": "c3", "replicates": [ok(3.40), ok(3.42)]}
    records = [head,
               {"id": 9, "kind": "reproduce", "of": 3, "commit": "c3", "replicates": [ok(3.44)]},
               {"id": 10, "kind": "reproduce", "of": 4, "commit": "c4", "replicates": [ok(9.0)]}]
    assert head_values(head, records) == [3.40, 3.42, 3.44]
    assert segment_sigma(records) is not None


# baseline [3.50, 3.52, 3.48]: σ = 0.02 on 2 df, so the first bar is t(2 df)·se, wide. Experiment 1
# lands in the grey zone twice and is kept on the mean of three runs; experiment 2 is a clear keep, topped up to
# three runs; experiment 3 is worse than the re-measured head.
SCRIPT = [3.50, 3.52, 3.48, 3.47, 3.46, 3.45, 3.30, 3.31, 3.29, 3.31]


def test_noise_aware_confirms_grey_candidates_and_re_measures_the_head(toy_repo):
    repo = toy_repo()
    run = LoopRun(repo, decision_rule="noise-aware", replicates=3)
    runner = ScriptedRunner(SCRIPT)
    run.run(iterations=3, runner=runner)
    records = run.records()
    assert [r["status"] for r in records] == ["keep", "keep", "keep", "discard"]
    assert [len(r["replicates"]) for r in records] == [3, 3, 3, 1]
    assert records[0]["metric"] == pytest.approx(3.50)
    assert records[1]["metric"] == pytest.approx(3.46) and records[1]["evidence"]["n"] == 3
    assert records[2]["metric"] == pytest.approx(3.30)
    # decided on one run; the top-up re-measured it and the keep stands on all three
    assert records[2]["evidence"]["first_decision"]["n"] == 1 and records[2]["evidence"]["n"] == 3
    # the two top-up runs did not pick it: their mean is the head's estimate free of winner's curse
    assert records[2]["evidence"]["fresh_mean"] == pytest.approx(3.30) and records[2]["evidence"]["fresh_n"] == 2
    last = records[3]["evidence"]
    assert last["best_before"] == pytest.approx(3.30) and last["n_before"] == 3
    # pooled over the three heads' runs, weighted by runs: (2·0.0004 + 2·0.0001 + 2·0.0001) / 6
    assert last["sigma"] == pytest.approx(0.0002 ** 0.5) and last["sigma_df"] == 6
    assert last["delta_sigma"] == pytest.approx(0.01 / last["sigma"])
    # every run's seed: replicate 0 the configured one, the others fresh
    assert runner.seeds == [42, run_seed(42, 0, 1), run_seed(42, 0, 2), 42, run_seed(42, 1, 1),
                            run_seed(42, 1, 2), 42, run_seed(42, 2, 1), run_seed(42, 2, 2), 42]
    assert [r["seed"] for r in records[0]["replicates"]] == runner.seeds[:3]
    assert git(repo, "rev-parse", "autoresearch/default") == records[2]["commit"]
    kinds = run.kinds()
    assert kinds.count("replicate-start") == 6


def test_greedy_with_one_baseline_run_is_autoresearch(toy_repo):
    run = LoopRun(toy_repo(), decision_rule="greedy", replicates=1)
    runner = ScriptedRunner([3.50, 3.49, 3.495, 3.40])
    run.run(iterations=3, runner=runner)
    assert [r["status"] for r in run.records()] == ["keep", "keep", "discard", "keep"]
    assert runner.seeds == [42, 42, 42, 42]


@pytest.mark.parametrize(
    "script, reason_part",
    [([3.50, 3.52, 3.48, 3.30, None], "then a replicate with seed"),  # keep, then a top-up crashes
     ([3.50, 3.52, 3.48, 3.47, None], "exited with code 1")],  # a confirmation crashes
    ids=["top-up-crash", "confirmation-crash"],
)
def test_a_change_that_fails_on_some_seed_is_not_kept(toy_repo, script, reason_part):
    repo = toy_repo()
    run = LoopRun(repo, decision_rule="noise-aware", replicates=3)
    run.run(iterations=1, runner=ScriptedRunner(script))
    record = run.records()[1]
    assert record["status"] == "crash" and reason_part in record["reason"]
    assert record["metric"] is None
    assert git(repo, "rev-parse", "autoresearch/default") == run.records()[0]["commit"]


def test_replicate_seeds_reach_the_training_process(toy_repo):
    repo = toy_repo()
    run = LoopRun(repo, replicates=2)
    run.run(iterations=0)
    logs = repo / ".autoresearch" / "default" / "logs"
    assert "seed 42 budget" in (logs / "0000.log").read_text()
    assert f"seed {run_seed(42, 0, 1)} budget" in (logs / "0000-r1.log").read_text()
    baseline = run.records()[0]
    assert baseline["evidence"] == {"n": 2, "sigma": 0.0}  # the toy is deterministic


@pytest.mark.parametrize(
    "rule, script, statuses",
    [  # a first run of 3.30 wins clearly; the top-up runs 3.55, 3.56 show it was luck
        ("noise-aware", [3.50, 3.52, 3.48, 3.30, 3.55, 3.56], ["keep", "discard"]),
        ("greedy", [3.50, 3.52, 3.48, 3.30, 3.60, 3.62], ["keep", "discard"]),  # mean 3.507
        ("noise-aware", [3.50, 3.52, 3.48, 3.30, 3.31, 3.29], ["keep", "keep"]),
    ],
    ids=["noise-aware-luck", "greedy-luck", "real"],
)
def test_a_keep_won_on_a_lucky_seed_is_undone_by_its_top_up(toy_repo, rule, script, statuses):
    repo = toy_repo()
    run = LoopRun(repo, decision_rule=rule, replicates=3)
    run.run(iterations=1, runner=ScriptedRunner(script))
    records = run.records()
    assert [r["status"] for r in records] == statuses
    assert len(records[1]["replicates"]) == 3
    head = records[-1] if statuses[-1] == "keep" else records[0]
    assert git(repo, "rev-parse", "autoresearch/default") == head["commit"]
    if statuses[-1] == "discard":
        assert "but the mean of all 3 is not" in records[1]["reason"]
        assert records[1]["evidence"]["first_decision"]["n"] == 1
        assert records[1]["evidence"]["n"] == 3
