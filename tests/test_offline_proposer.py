"""bot.proposers.offline: one UPPER_CASE constant per experiment, steered by the ledger."""

import ast
import difflib
import textwrap

import pytest

from bot.errors import ProposalError
from bot.proposal import validate
from bot.proposers.offline import OfflineProposer, candidate_values, find_constants, format_value

TRAIN = textwrap.dedent('''\
    """A train.py in autoresearch style."""
    import os

    # ---------------------------------------------------------------------------
    # Hyperparameters
    DEPTH = 8  # transformer layers
    CPU_DEPTH = 2  # layers when running on CPU
    LR = 3e-4  # learning rate
    WIDTH = 64  # model width
    WARMUP_RATIO = 0.0  # fraction of the budget
    ADAM_BETA1 = 0.9
    SEED = 42  # random seed
    NAME = "gpt"
    USE_FLASH = True
    BETAS = (0.9, 0.95)
    NEG = -2
    NEG_FLOAT = -0.5
    TOTAL = DEPTH * 2
    ANNOTATED: int = 7
    A = B = 3
    lower_case = 5


    def helper():
        INNER = 5
        return INNER


    if os.environ.get("FAST"):
        BRANCH = 3

    print(DEPTH, LR)
''')


def test_find_constants_top_level_numbers_only():
    found = find_constants("train.py", TRAIN)
    assert [(c.name, c.value, c.literal) for c in found] == [
        ("DEPTH", 8, "8"),
        ("CPU_DEPTH", 2, "2"),
        ("LR", 3e-4, "3e-4"),
        ("WIDTH", 64, "64"),
        ("WARMUP_RATIO", 0.0, "0.0"),
        ("ADAM_BETA1", 0.9, "0.9"),
        ("SEED", 42, "42"),
        ("NEG", -2, "-2"),
        ("NEG_FLOAT", -0.5, "-0.5"),
    ]
    lines = TRAIN.splitlines()
    for constant in found:
        assert constant.path == "train.py"
        assert lines[constant.line - 1][constant.start:constant.end] == constant.literal
        assert lines[constant.line - 1].startswith(constant.name + " = ")


@pytest.mark.parametrize(
    "source, names",
    [
        ("X = 1\n", ["X"]),
        ("X = True\nY = None\n", []),
        ("X = 'text'\nY = b'1'\n", []),
        ("X = (1, 2)\nY = [1]\nZ = {1: 2}\n", []),
        ("X = 1 + 2\nY = 2 ** 10\nZ = int('3')\n", []),
        ("X = -1\nY = -1.5e-3\nZ = +1\n", ["X", "Y"]),
        ("X_2 = 1\nx = 1\nXy = 1\n_X = 1\n", ["X_2"]),
        ("def f():\n    X = 1\nclass C:\n    Y = 2\n", []),
        ("if True:\n    X = 1\nfor i in range(2):\n    Y = 2\n", []),
        ("X: int = 1\nY += 1\n", []),
        ("X = Y = 1\nA, B = 1, 2\n", []),
        ("X = 1j\n", []),
        ("X = (\n    1\n)\n", ["X"]),  # the literal itself is on one line
        ("X = 1 +\n", []),  # does not parse: nothing to change
    ],
    ids=["int", "bool-none", "strings", "containers", "expressions", "negative", "upper-case-only",
         "inside-def-class", "inside-if-for", "annotated-augmented", "multi-target", "complex",
         "parenthesised", "syntax-error"],
)
def test_find_constants_table(source, names):
    assert [c.name for c in find_constants("t.py", source)] == names


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("WIDTH", 64, [128, 32]),  # a power of two stays one
        ("HEADS", 4, [8, 2]),
        ("BATCH", 1024, [2048, 512]),
        ("DEPTH", 3, [4, 2]),  # small ints step by one
        ("DEPTH", 2, [3, 1]),
        ("DEPTH", 1, [2]),  # never below 1
        ("OFFSET", 0, [1]),
        ("SHIFT", -3, [-2, -4]),
        ("STEPS", 100, [150, 67]),  # larger ints scale by 1.5
        ("ADAM_BETA1", 0.9, [0.95, 0.8]),  # betas move their distance to 1
        ("EMA_DECAY", 0.5, [0.75]),  # 0.0 is not a beta
        ("MOMENTUM", 1.5, [2.25, 1.0, 4.5, 0.5]),  # not in (0, 1): a plain float
        ("WARMUP_RATIO", 0.0, [0.1]),  # ratios step by 0.1 inside [0, 1]
        ("WARMDOWN_RATIO", 0.5, [0.6, 0.4]),
        ("DROPOUT", 1.0, [0.9]),
        ("WEIGHT_DECAY", 0.0, [0.01, 0.1]),  # zero floats get small values
        ("LR", 0.03, [0.045, 0.02, 0.09, 0.01]),  # generic floats: x1.5, /1.5, x3, /3
        ("LR", -0.3, [-0.45, -0.2, -0.9, -0.1]),
    ],
    ids=["pow2", "pow2-small", "pow2-large", "small-int", "two", "one", "zero-int", "negative-int",
         "large-int", "beta", "beta-no-zero", "momentum-above-one", "ratio-zero", "ratio", "dropout-one",
         "zero-float", "float", "negative-float"],
)
def test_candidate_values(name, value, expected):
    values = candidate_values(name, value)
    assert values == pytest.approx(expected)
    assert value not in values
    assert len(set(values)) == len(values)
    assert all(type(v) is type(value) for v in values if isinstance(value, int))


@pytest.mark.parametrize(
    "value, like, expected",
    [
        (4.5e-4, "3e-4", "4.5e-4"),  # scientific stays scientific
        (1e-4, "3e-4", "1e-4"),
        (9e-4, "3E-4", "9e-4"),
        (2.0000000001e-3, "1e-3", "2e-3"),
        (1500.0, "1e3", "1.5e3"),
        (-4.5e-4, "-3e-4", "-4.5e-4"),
        (0.06, "0.04", "0.06"),
        (0.026666666666666668, "0.04", "0.0267"),  # three significant digits
        (0.15000000000000002, "0.05", "0.15"),
        (1.0, "0.95", "1.0"),  # a float stays a float literal
        (2.0, "1.", "2.0"),
        (-0.75, "-0.5", "-0.75"),
        (128, "64", "128"),
        (-4, "-3", "-4"),
    ],
    ids=["sci", "sci-one-digit", "sci-upper", "sci-rounded", "sci-large", "sci-negative", "decimal",
         "decimal-rounded", "decimal-float-noise", "decimal-one", "trailing-dot", "negative", "int",
         "negative-int"],
)
def test_format_value(value, like, expected):
    text = format_value(value, like)
    assert text == expected
    assert type(ast.literal_eval(text)) is type(value)  # still a literal of the same kind


def one_line_diff(old, new):
    return [l for l in difflib.ndiff(old.splitlines(), new.splitlines()) if l[:1] in "+-"]


def test_proposal_changes_one_constant_and_keeps_the_comment():
    base = {"train.py": "import torch\n\nLR = 3e-4  # learning rate\nprint(LR)\n"}
    proposal = OfflineProposer().propose(base, [])
    assert proposal.files == {"train.py": "import torch\n\nLR = 4.5e-4  # learning rate\nprint(LR)\n"}
    assert proposal.change == {"file": "train.py", "name": "LR", "old": "3e-4", "new": "4.5e-4"}
    assert proposal.description == "LR 3e-4 -> 4.5e-4"
    assert "has not been tried yet" in proposal.rationale


@pytest.mark.parametrize("experiment_id", range(12))
def test_proposals_parse_differ_in_one_line_and_validate(experiment_id):
    base = {"train.py": TRAIN, "README.md": "WIDTH = 3\n"}
    proposal = OfflineProposer(seed=7).propose(base, [], experiment_id=experiment_id)
    assert set(proposal.files) == {"train.py"}  # only python files are mutated
    new = proposal.files["train.py"]
    ast.parse(new)
    diff = one_line_diff(TRAIN, new)
    assert len(diff) == 2 and diff[0][2:].split("=")[0] == diff[1][2:].split("=")[0]
    assert proposal.change["name"] in diff[1]
    assert proposal.change["name"] != "SEED"  # a seed measures luck
    assert validate(proposal, base, ("train.py",), ("prepare.py",))


@pytest.mark.parametrize(
    "device, allowed, refused",
    [("cpu", {"CPU_DEPTH", "WIDTH"}, {"DEPTH"}),
     ("cuda", {"DEPTH", "WIDTH"}, {"CPU_DEPTH"}),
     ("NVIDIA H100 80GB HBM3", {"DEPTH", "WIDTH"}, {"CPU_DEPTH"}),
     (None, {"DEPTH", "CPU_DEPTH", "WIDTH"}, set())],
    ids=["cpu-skips-gpu-twin", "cuda-skips-cpu-twin", "gpu-name", "unknown-device-uses-all"],
)
def test_cpu_twin_convention(device, allowed, refused):
    base = {"train.py": "DEPTH = 8\nCPU_DEPTH = 2\nWIDTH = 64\n"}
    names = {OfflineProposer().propose(base, [], device=device, experiment_id=i).change["name"]
             for i in range(30)}
    assert names <= allowed
    assert not names & refused
    assert len(names) >= 2  # the random tie-break does spread over the candidates


def history_record(name, old, new, status="discard"):
    return {"id": 1, "status": status, "change": {"file": "train.py", "name": name, "old": old, "new": new}}


def test_never_repeats_a_tried_value():
    base = {"train.py": "LR = 0.04\n"}
    first = OfflineProposer().propose(base, [])
    assert first.change["new"] == "0.06"
    history = [history_record("LR", "0.04", "0.06")]
    second = OfflineProposer().propose(base, history)
    assert second.change["new"] == "0.0267"
    assert "tried 1 time(s) without a keep" in second.rationale
    history.append(history_record("LR", "0.04", "0.0267"))
    third = OfflineProposer().propose(base, history)
    assert third.change["new"] == "0.12"


def test_the_value_a_change_left_counts_as_tried():
    # WIDTH 64 -> 128 was kept and 128 -> 256 discarded: 64 and 256 were both measured
    base = {"train.py": "WIDTH = 128\n"}
    history = [history_record("WIDTH", "64", "128", status="keep"), history_record("WIDTH", "128", "256")]
    with pytest.raises(ProposalError):
        OfflineProposer().propose(base, history)
    assert OfflineProposer().propose(base, history[1:]).change["new"] == "64"


@pytest.mark.parametrize(
    "source, kept_old, kept_new, default_next, pushed_next",
    [
        ("LR = 0.02\n", "0.04", "0.02", "0.03", "0.0133"),
        ("DEPTH = 6\n", "8", "6", "7", "5"),
    ],
    ids=["float-went-down", "int-went-down"],
)
def test_continues_a_kept_direction(source, kept_old, kept_new, default_next, pushed_next):
    base = {"train.py": source}
    name = source.split(" ")[0]
    assert OfflineProposer().propose(base, []).change["new"] == default_next  # nearest first: up
    history = [history_record(name, kept_old, kept_new, status="keep")]
    pushed = OfflineProposer().propose(base, history)
    assert pushed.change["new"] == pushed_next  # the kept change went down: keep going down
    assert "push further" in pushed.rationale


def test_a_kept_name_is_preferred():
    base = {"train.py": "LR = 0.02\nWIDTH = 64\nDEPTH = 4\n"}
    history = [history_record("LR", "0.03", "0.02", status="keep")]
    names = {OfflineProposer().propose(base, history, experiment_id=i).change["name"] for i in range(10)}
    assert names == {"LR"}


def test_names_tried_least_come_first():
    base = {"train.py": "A = 4\nB = 4\n"}
    history = [history_record("A", "4", "8")]
    names = {OfflineProposer().propose(base, history, experiment_id=i).change["name"] for i in range(10)}
    assert names == {"B"}


@pytest.mark.parametrize("seed, experiment_id", [(42, 0), (42, 7), (1, 3)])
def test_deterministic_for_the_same_seed_and_id(seed, experiment_id):
    base = {"train.py": TRAIN}
    a = OfflineProposer(seed=seed).propose(base, [], experiment_id=experiment_id)
    b = OfflineProposer(seed=seed).propose(base, [], experiment_id=experiment_id)
    assert a == b


def test_different_ids_explore_different_constants():
    base = {"train.py": TRAIN}
    names = {OfflineProposer().propose(base, [], experiment_id=i).change["name"] for i in range(20)}
    assert len(names) >= 3


def test_avoid_skips_a_refused_value():
    base = {"train.py": "LR = 0.04\n"}
    proposal = OfflineProposer().propose(base, [], avoid={("LR", "0.06")})
    assert proposal.change["new"] == "0.0267"


@pytest.mark.parametrize(
    "base, history, avoid",
    [
        ({"train.py": "X = 1\n"}, [history_record("X", "1", "2")], ()),
        ({"train.py": "X = 1\n"}, [], {("X", "2")}),
        ({"train.py": "SEED = 42\n"}, [], ()),
        ({"train.py": "print('no constants')\n"}, [], ()),
        ({"notes.md": "X = 1\n"}, [], ()),
        ({"train.py": "X = (\n"}, [], ()),
        ({}, [], ()),
    ],
    ids=["all-tried", "all-avoided", "seed-only", "no-constants", "not-python", "does-not-parse", "no-files"],
)
def test_exhausted_raises(base, history, avoid):
    with pytest.raises(ProposalError, match="tried every neighbouring value"):
        OfflineProposer().propose(base, history, avoid=avoid)


def test_exhausting_a_file_step_by_step():
    base = {"train.py": "X = 1\nY = 0\n"}
    history = []
    for _ in range(2):
        proposal = OfflineProposer().propose(base, history)
        history.append(history_record(proposal.change["name"], proposal.change["old"], proposal.change["new"]))
    assert sorted((h["change"]["name"], h["change"]["new"]) for h in history) == [("X", "2"), ("Y", "1")]
    with pytest.raises(ProposalError):
        OfflineProposer().propose(base, history)


def test_a_beta_stays_below_one():
    proposal = OfflineProposer().propose({"train.py": "ADAM_BETA2 = 0.999\n"}, [])
    assert 0 < float(proposal.change["new"]) < 1
