"""Seed-only changes are refused before any compute: they measure luck, not an idea
(autoresearch's own progress plot ends with a kept "random seed 42 -> 137")."""

import pytest

from bot.errors import ProposalError
from bot.proposal import Proposal, validate
from conftest import REPO_ROOT, LoopRun, ScriptedRunner

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


# Disguised seed changes: the edit only moves a value that flows into a seeding call.
DISGUISED = [
    # (id, base, new, refused)
    ("constant-into-seed", "X = 42\nLR = 0.1\ntorch.manual_seed(X)\n", "X = 43\nLR = 0.1\ntorch.manual_seed(X)\n", True),
    ("constant-chain", "A = 4\nB = A * 2 + 1\ntorch.manual_seed(B)\n", "A = 5\nB = A * 2 + 1\ntorch.manual_seed(B)\n", True),
    ("aliased-call", "ms = torch.manual_seed\nms(42)\n", "ms = torch.manual_seed\nms(43)\n", True),
    ("aliased-call-added", "LR = 0.1\n", "LR = 0.1\nms = torch.manual_seed\nms(43)\n", True),
    ("imported-alias-added", "LR = 0.1\n", "LR = 0.1\nfrom torch import manual_seed as ms\nms(43)\n", True),
    ("xor-offset", "torch.manual_seed(run_seed())\n", "torch.manual_seed(run_seed() ^ 1)\n", True),
    ("plus-offset", "torch.manual_seed(run_seed())\n", "torch.manual_seed(run_seed() + 1)\n", True),
    ("generator", "g = torch.Generator().manual_seed(7)\nx = torch.randn(3, generator=g)\n",
     "g = torch.Generator().manual_seed(8)\nx = torch.randn(3, generator=g)\n", True),
    ("unused-generator-added", "LR = 0.1\n", "LR = 0.1\ng = torch.Generator().manual_seed(8)\n", True),
    ("random-seed", "random.seed(1)\nLR = 0.1\n", "random.seed(2)\nLR = 0.1\n", True),
    ("numpy-seed", "np.random.seed(1)\n", "np.random.seed(2)\n", True),
    ("default-rng", "rng = np.random.default_rng(1)\nx = rng.normal()\n", "rng = np.random.default_rng(2)\nx = rng.normal()\n", True),
    ("default-rng-keyword", "rng = np.random.default_rng(seed=1)\nx = rng.normal()\n",
     "rng = np.random.default_rng(seed=2)\nx = rng.normal()\n", True),
    ("cuda-seed-all", "torch.cuda.manual_seed_all(1)\n", "torch.cuda.manual_seed_all(2)\n", True),
    ("set-seed", "set_seed(1)\nLR = 0.1\n", "set_seed(2)\nLR = 0.1\n", True),
    ("another-rng-added", "import torch\ntorch.manual_seed(1)\n", "import torch\nimport random\ntorch.manual_seed(1)\nrandom.seed(1)\n", True),
    ("seed-helper-body", "def set_seed(s):\n    torch.manual_seed(s)\nset_seed(1)\n",
     "def set_seed(s):\n    torch.manual_seed(s)\n    np.random.seed(s)\nset_seed(1)\n", True),
    ("seed-keyword", "loader = make_loader(batch=8, seed=1)\n", "loader = make_loader(batch=8, seed=2)\n", True),
    ("seed-dict-key", "cfg = {'seed': 1, 'lr': 0.1}\n", "cfg = {'seed': 2, 'lr': 0.1}\n", True),
    ("hash-seed", "os.environ['PYTHONHASHSEED'] = '0'\n", "os.environ['PYTHONHASHSEED'] = '1'\n", True),
    ("seed-attribute", "args.seed = 1\nrun(args)\n", "args.seed = 2\nrun(args)\n", True),
    ("seed-in-tuple", "SEED, LR = 1, 0.1\n", "SEED, LR = 2, 0.1\n", True),
    # real changes, with or without a seed change
    ("value-also-feeds-the-model", "X = 42\ntorch.manual_seed(X)\nWIDTH = X * 2\n",
     "X = 43\ntorch.manual_seed(X)\nWIDTH = X * 2\n", False),
    ("seed-and-lr", "X = 42\nLR = 0.1\ntorch.manual_seed(X)\n", "X = 43\nLR = 0.2\ntorch.manual_seed(X)\n", False),
    ("generator-device", "g = torch.Generator(device='cpu').manual_seed(7)\nx = torch.randn(3, generator=g)\n",
     "g = torch.Generator(device='cuda').manual_seed(7)\nx = torch.randn(3, generator=g)\n", False),
    ("keyword-not-seed", "loader = make_loader(batch=8, seed=1)\n", "loader = make_loader(batch=16, seed=1)\n", False),
    ("dict-not-seed", "cfg = {'seed': 1, 'lr': 0.1}\n", "cfg = {'seed': 1, 'lr': 0.2}\n", False),
    ("tuple-not-seed", "SEED, LR = 1, 0.1\n", "SEED, LR = 1, 0.2\n", False),
    ("seed-line-with-real-work", "x = 1\nrun(seed=SEED, lr=0.04)\n", "x = 1\nrun(seed=SEED, lr=0.05)\n", False),
    ("print-added", "torch.manual_seed(1)\n", "torch.manual_seed(1)\nprint('step')\n", False),
]


@pytest.mark.parametrize("base, new, refused", [case[1:] for case in DISGUISED], ids=[case[0] for case in DISGUISED])
def test_disguised_seed_only_changes_are_refused(base, new, refused):
    proposal = Proposal("change", "why", {"train.py": new})
    if refused:
        with pytest.raises(ProposalError, match="only changes a random seed: that measures luck, not an idea"):
            validate(proposal, {"train.py": base}, ["train.py"])
    else:
        assert validate(proposal, {"train.py": base}, ["train.py"])


@pytest.mark.parametrize(
    "files, refused",
    [
        ({"train.py": BASE.replace("manual_seed(42)", "manual_seed(7)"), "model.py": "WIDTH = 65\nSEED = 1\n"}, False),
        ({"train.py": BASE.replace("manual_seed(42)", "manual_seed(7)"), "model.py": "WIDTH = 64\nSEED = 2\n"}, True),
        ({"train.py": BASE.replace("manual_seed(42)", "manual_seed(7)"), "notes.md": "seed: 2\nwidth: 64\n"}, True),
        ({"train.py": BASE.replace("manual_seed(42)", "manual_seed(7)"), "notes.md": "seed: 1\nwidth: 65\n"}, False),
    ],
    ids=["seed-and-real-file", "seeds-in-two-files", "seed-and-seed-note", "seed-and-real-note"],
)
def test_seed_only_across_files(files, refused):
    base = {"train.py": BASE, "model.py": "WIDTH = 64\nSEED = 1\n", "notes.md": "seed: 1\nwidth: 64\n"}
    proposal = Proposal("change", "why", files)
    if refused:
        with pytest.raises(ProposalError, match="only changes a random seed"):
            validate(proposal, base, ["*.py", "*.md"])
    else:
        assert validate(proposal, base, ["*.py", "*.md"])


def test_the_real_train_py_refuses_a_disguised_seed_change():
    text = (REPO_ROOT / "train.py").read_text()
    assert "torch.manual_seed(run_seed())" in text
    for new in ("torch.manual_seed(run_seed() ^ 1)", "torch.manual_seed(1234)", "torch.manual_seed(run_seed() + 1)"):
        proposal = Proposal("change", "why", {"train.py": text.replace("torch.manual_seed(run_seed())", new)})
        with pytest.raises(ProposalError, match="only changes a random seed"):
            validate(proposal, {"train.py": text}, ["train.py"], ["prepare.py"])


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
