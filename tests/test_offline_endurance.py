"""Acceptance (issue 9): the offline proposer runs 100 experiments on a repository with six
constants without stopping for lack of proposals.

The runner trains nothing: its metric is a smooth function of the six constants, read from the
experiment's own source files, plus small seeded noise, so keeps and discards both happen. The
loop, git, validation and the ledger are the real ones.
"""

import math
import random
from pathlib import Path

import pytest

from bot.decide import KEEP
from bot.errors import ProposalError
from bot.loop import ResearchLoop
from bot.proposal import validate
from bot.proposers.offline import OfflineProposer, find_constants
from bot.runners import FinishedHandle, RunResult
from conftest import LoopRun, make_repo

TRAIN = '''\
"""A stand-in train.py with six constants of six kinds; the test's runner scores it unrun."""
LR = 0.02  # learning rate (a scale)
WIDTH = 64  # model width (a power of two)
DEPTH = 3  # blocks (a small count)
ADAM_BETA2 = 0.9  # second-moment decay (a beta)
WARMUP_RATIO = 0.3  # fraction of the budget (a fraction)
USE_BIAS = 1  # 1: biases in the linear layers (a switch)
print("no training here")
'''
EXPERIMENTS = 100


def objective(c):
    """Lower is better; the optimum is LR 0.06, WIDTH 96, DEPTH 5, beta2 0.98, warmup 0.05, no bias."""
    return (3.0 + math.log(c["LR"] / 0.06) ** 2 + 0.5 * math.log2(c["WIDTH"] / 96) ** 2
            + ((c["DEPTH"] - 5) / 4) ** 2 + 0.3 * math.log((1 - c["ADAM_BETA2"]) / 0.02) ** 2
            + 2 * (c["WARMUP_RATIO"] - 0.05) ** 2 + 0.02 * c["USE_BIAS"])


def values_of(text):
    return {c.name: c.value for c in find_constants("train.py", text)}


class ObjectiveRunner:
    """Scores an experiment's own train.py with `objective` plus noise seeded by (id, seed)."""

    name = "objective"

    def __init__(self, noise=0.01):
        self.noise, self.runs = noise, 0

    def submit(self, experiment):
        self.runs += 1
        text = (Path(experiment.source_dir) / "train.py").read_text()
        value = objective(values_of(text)) + random.Random(f"{experiment.id}:{experiment.seed}").gauss(0, self.noise)
        return FinishedHandle(RunResult(status="ok", metric=value, summary={"val_bpb": value}, device="cpu",
                                        timings={"total_s": 1.0}))


class RecordingProposer(OfflineProposer):
    """The offline proposer, recording the base_commit the loop passes it."""

    def __init__(self, seed):
        super().__init__(seed)
        self.passed = []

    def propose(self, base_files, history, device=None, experiment_id=0, avoid=(), base_commit=None):
        self.passed.append(base_commit)
        return super().propose(base_files, history, device=device, experiment_id=experiment_id, avoid=avoid,
                               base_commit=base_commit)


def revisits(experiments):
    """(name, value) pairs measured against more than one head: re-tries after the head moved."""
    parents = {}
    for r in experiments:
        parents.setdefault((r["change"]["name"], float(r["change"]["new"])), set()).add(r["parent"])
    return {pair for pair, heads in parents.items() if len(heads) > 1}


@pytest.mark.parametrize("rule, replicates", [("greedy", 1), ("noise-aware", 3)])
def test_the_offline_proposer_runs_100_experiments_on_six_constants(tmp_path, rule, replicates):
    run = LoopRun(make_repo(tmp_path / "repo", {"train.py": TRAIN}), decision_rule=rule, replicates=replicates)
    loop = run.loop(runner=ObjectiveRunner())  # the loop as the CLI builds it, with the offline proposer
    outcome = loop.run(iterations=EXPERIMENTS)

    assert outcome["stop_reason"] == f"finished {EXPERIMENTS} experiment(s)"
    records = run.records()
    experiments = [r for r in records if r["kind"] == "experiment"]
    assert len(experiments) == EXPERIMENTS
    assert "proposal-refused" not in run.kinds()  # the proposer knew what was tried on each head
    pairs = [(r["parent"], r["diff_hash"]) for r in experiments]
    assert len(set(pairs)) == len(pairs), "a change was proposed twice against the same head"
    statuses = {r["status"] for r in experiments}
    assert {"keep", "discard"} <= statuses
    assert len({r["change"]["name"] for r in experiments}) == 6  # every constant gets its turn
    assert revisits(experiments), "no value was measured again after the head moved"
    assert objective_of(run, outcome["best"]["commit"]) < objective_of(run, records[0]["commit"]) - 0.3


def objective_of(run, commit):
    return objective(values_of(run.git.read_file(commit, "train.py")))


def test_the_loop_passes_the_tracking_head_as_base_commit(tmp_path):
    run = LoopRun(make_repo(tmp_path / "repo", {"train.py": TRAIN}), decision_rule="greedy", replicates=1)
    proposer = RecordingProposer(run.config.seed)  # given at construction: the loop's proposal source keeps it
    ResearchLoop(run.config, run.git, ObjectiveRunner(), proposer, run.ledger).run(iterations=5)
    experiments = [r for r in run.records() if r["kind"] == "experiment"]
    assert proposer.passed == [r["parent"] for r in experiments]
    assert len(set(proposer.passed)) > 1  # the head moved, and the proposer was told


def simulate(experiments, use_heads, seed=42, noise=0.01):
    """The loop's bookkeeping in memory (greedy, one run each): proposer, validation, decision."""
    proposer, head, files = OfflineProposer(seed), "h0", {"train.py": TRAIN}
    best = objective(values_of(TRAIN))
    history = [{"id": 0, "kind": "baseline", "status": KEEP, "commit": head, "parent": None}]
    for exp_id in range(1, experiments + 1):
        proposal = proposer.propose(files, history, device="cpu", experiment_id=exp_id,
                                    base_commit=head if use_heads else None)
        tried = {r.get("diff_hash") for r in history if r.get("parent") == head}
        digest = validate(proposal, files, ("train.py",), (), tried)  # a repeat on this head would raise
        value = objective(values_of(proposal.files["train.py"])) + random.Random(exp_id).gauss(0, noise)
        status = KEEP if value < best else "discard"
        commit = f"h{exp_id}"
        history.append({"id": exp_id, "kind": "experiment", "status": status, "commit": commit, "parent": head,
                        "change": proposal.change, "diff_hash": digest,
                        "evidence": {"improvement": best - value, "sigma": noise}})
        if status == KEEP:
            head, files, best = commit, proposal.files, value
    return history, files


def test_the_proposer_alone_runs_100_experiments_and_re_tries_after_the_head_moves():
    history, files = simulate(EXPERIMENTS, use_heads=True)
    experiments = history[1:]
    assert len(experiments) == EXPERIMENTS
    pairs = [(r["parent"], r["diff_hash"]) for r in experiments]
    assert len(set(pairs)) == len(pairs)
    assert revisits(experiments)
    assert objective(values_of(files["train.py"])) < objective(values_of(TRAIN)) - 0.3


def test_without_base_commit_no_value_is_ever_measured_twice():
    """Old callers (no base_commit): every value measured on any head counts as tried."""
    try:
        history, _ = simulate(EXPERIMENTS, use_heads=False)
    except ProposalError as exc:  # allowed: with every value excluded for good, a run may end
        pytest.fail(f"ran dry: {exc}")
    assert not revisits(history[1:])
