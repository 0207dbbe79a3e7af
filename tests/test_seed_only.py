"""Seed-only changes are refused before any compute: they measure luck, not an idea
(autoresearch's own progress plot ends with a kept "random seed 42 -> 137")."""

import pytest

from bot.errors import ProposalError
from bot.proposal import Proposal, validate
from conftest import LoopRun, ScriptedRunner

BASE = "import torch\nLR = 0.04\ntorch.manual_seed(42)\nSEED = 42\n"


@pytest.mark.parametrize(
    "new, refused",
    [
        (BASE.replace("manual_seed(42)", "manual_seed(137)"), True),  # autoresearch's kept change
        (BASE.replace("SEED = 42", "SEED = 137"), True),
        (BASE.replace("SEED = 42", "SEED = 137  # luckier"), True),
        (BASE.replace("SEED = 42", "SEED = 137") + "# try another seed\n", True),  # a comment is no idea
        (BASE.replace("manual_seed(42)", "manual_seed(42); random.seed(1)"), True),
        (BASE.replace("LR = 0.04", "LR = 0.05"), False),
        (BASE.replace("SEED = 42", "SEED = 137").replace("LR = 0.04", "LR = 0.05"), False),  # plus a real change
    ],
    ids=["manual-seed", "constant", "constant-comment", "plus-comment-line", "another-rng", "lr", "seed-and-lr"],
)
def test_seed_only_changes_are_refused(new, refused):
    proposal = Proposal("change", "why", {"train.py": new})
    if refused:
        with pytest.raises(ProposalError, match="only changes a random seed"):
            validate(proposal, {"train.py": BASE}, ["train.py"])
    else:
        assert validate(proposal, {"train.py": BASE}, ["train.py"])


class SeedProposer:
    """Proposes a seed change first, then a real one: the loop must spend no run on the first."""

    def __init__(self):
        self.calls = 0

    def propose(self, base_files, history, device=None, experiment_id=0, avoid=()):
        self.calls += 1
        text = base_files["train.py"]
        if self.calls == 1:
            return Proposal("random seed 42 -> 137", "luck", {"train.py": text + "\nSEED = 137\n"})
        return Proposal("LR 0.04 -> 0.06", "real", {"train.py": text.replace("LR = 0.04", "LR = 0.06")},
                        {"name": "LR", "old": "0.04", "new": "0.06"})


def test_the_loop_refuses_a_seed_only_proposal_without_running_it(toy_repo):
    run = LoopRun(toy_repo(), replicates=1)
    runner = ScriptedRunner([3.5, 3.2])
    loop = run.loop(runner=runner)
    loop.proposer = SeedProposer()
    loop.run(iterations=1)
    refused = [facts for kind, facts in run.events if kind == "proposal-refused"]
    assert len(refused) == 1 and "only changes a random seed" in refused[0]["reason"]
    assert [r["description"] for r in run.records()] == ["baseline", "LR 0.04 -> 0.06"]
    assert runner.metrics == [] and len(runner.seeds) == 2  # two runs: baseline and the real change
