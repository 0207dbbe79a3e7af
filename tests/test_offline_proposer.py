"""bot.proposers.offline: one UPPER_CASE constant per experiment, steered by the ledger."""

import ast
import difflib
import textwrap

import pytest

from bot.errors import ProposalError
from bot.proposal import validate
from bot.proposers.offline import OfflineProposer, candidate_values, find_constants, format_value
from bot.proposers.steps import is_flag, literal_for, refinements, step_kind

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
        ("USE_FLASH", True, "True"),  # a bool is a switch the proposer toggles
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
        ("X = True\nY = None\nZ = -True\n", ["X"]),
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
    ids=["int", "bool-yes-none-no", "strings", "containers", "expressions", "negative", "upper-case-only",
         "inside-def-class", "inside-if-for", "annotated-augmented", "multi-target", "complex",
         "parenthesised", "syntax-error"],
)
def test_find_constants_table(source, names):
    assert [c.name for c in find_constants("t.py", source)] == names


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("WIDTH", 64, [128, 32, 80, 48, 65, 63]),  # a power of two: x2 / /2 first, then +-25 %, then +-1
        ("HEADS", 4, [8, 2, 5, 3]),
        ("BATCH", 1024, [2048, 512, 1280, 768, 1025, 1023]),
        ("DEPTH", 3, [4, 2, 6, 1]),  # small counts: +-1 first, then +-25 % (rounded half up), then x2 / /2
        ("DEPTH", 2, [3, 1, 4]),
        ("DEPTH", 6, [7, 5, 8, 12, 3]),  # 6 x 0.75 = 4.5 rounds to 5, already there
        ("DEPTH", 1, [2]),  # never below 1
        ("OFFSET", 0, [1]),
        ("SHIFT", -3, [-4, -2, -6, -1]),  # negative ints mirror the positive steps
        ("STEPS", 100, [125, 75, 200, 50, 101, 99]),  # larger ints: +-25 % first, +-1 last
        ("STEPS", 10, [11, 9, 13, 8, 20, 5]),
        ("ADAM_BETA1", 0.9, [0.95, 0.8]),  # betas move their distance to 1
        ("EMA_DECAY", 0.5, [0.75]),  # 0.0 is not a beta
        ("MOMENTUM", 1.5, [4.5, 0.5, 2.25, 1.0]),  # not in (0, 1): a plain float
        ("WARMUP_RATIO", 0.0, [0.1]),  # ratios step by 0.1 inside [0, 1]
        ("WARMDOWN_RATIO", 0.5, [0.6, 0.4]),
        ("DROPOUT", 1.0, [0.9]),
        ("WEIGHT_DECAY", 0.0, [0.01, 0.1]),  # zero floats get small values
        ("LR", 0.03, [0.09, 0.01, 0.045, 0.02]),  # generic floats, coarse first: x3, /3, x1.5, /1.5
        ("LR", -0.3, [-0.9, -0.1, -0.45, -0.2]),
        ("USE_FLASH", True, [False]),  # bools are toggled
        ("DEBUG", False, [True]),
    ],
    ids=["pow2", "pow2-small", "pow2-large", "small-int", "two", "six", "one", "zero-int", "negative-int",
         "large-int", "ten", "beta", "beta-no-zero", "momentum-above-one", "ratio-zero", "ratio", "dropout-one",
         "zero-float", "float", "negative-float", "bool-true", "bool-false"],
)
def test_candidate_values(name, value, expected):
    values = candidate_values(name, value)
    assert values == pytest.approx(expected)
    assert value not in values
    assert len(set(values)) == len(values)
    assert all(type(v) is type(value) for v in values if isinstance(value, int))


@pytest.mark.parametrize(
    "name, value, comment, flag, expected",
    [
        ("USE_FLASH", 1, "", True, [0]),  # a switch word in the name
        ("TORCH_COMPILE", 0, "  # compile the model", True, [1]),
        ("ENABLE_BIAS", 1, "", True, [0]),
        ("NO_DECAY_ON_BIAS", 0, "", True, [1]),
        ("SHOW_PRICE", 0, "  # 1: add the price sentence", True, [1]),  # a comment saying what 1 means
        ("NAME_FIRST", 1, "  # 1: names the product; 0: teases first", True, [0]),
        ("CLIP", 1, "  # (0 = off)", True, [0]),
        ("FEATURES_SHOWN", 1, "  # features listed in the sentence", False, [2]),  # a count: 1 -> 2
        ("MUSE", 1, "", False, [2]),  # USE inside a word is no switch word
        ("USE_FLASH", 2, "", False, [3, 1, 4]),  # only 0 and 1 are switch values
        ("ENABLE_X", 1.0, "", False, [3.0, 1 / 3, 1.5, 1 / 1.5]),  # floats are never switches
        ("FLAG", True, "", True, [False]),
    ],
    ids=["use", "compile", "enable", "no-on", "comment-1", "comment-both", "comment-0-equals", "count",
         "word-inside", "two-is-no-switch", "float", "bool"],
)
def test_switches_are_toggled_not_scaled(name, value, comment, flag, expected):
    assert is_flag(name, value, comment) is flag
    assert candidate_values(name, value, flag) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(
    "name, value, like, seen, direction, expected",
    [
        # floats: halve the gap to the nearest tried value, geometrically, each side; wider side first
        ("LR", 0.04, "0.04", {0.06, 0.0267, 0.12, 0.0133}, None, [0.049, 0.0327, 0.0693, 0.0231]),
        ("LR", 0.04, "0.04", {0.06, 0.049, 0.0327, 0.0267}, None, [0.0443, 0.0362]),
        ("LR", 0.04, "0.04", {0.06, 0.0267}, -1, [0.0327, 0.049]),  # the kept direction's side first
        ("LR", 3e-4, "3e-4", {4.5e-4}, None, [3.67e-4]),
        ("LR", -0.3, "-0.3", {-0.45}, None, [-0.367]),
        ("LR", 0.04, "0.04", {0.0404, 0.0396}, None, []),  # within 1 %: nothing finer
        ("LR", 0.04, "0.04", {0.0404, 0.06}, None, [0.049]),  # the nearest is too close: halve to the next
        ("LR", 0.04, "0.04", {-0.04}, None, []),  # across zero there is no geometric midpoint
        # betas: geometric in 1-beta; 0.999 keeps its digits
        ("ADAM_BETA1", 0.9, "0.9", {0.95}, None, [0.9293]),
        ("ADAM_BETA2", 0.999, "0.999", {0.9995, 0.998}, None, [0.9986, 0.9993]),
        # fractions: arithmetic, down to 0.01
        ("WARMUP_RATIO", 0.0, "0.0", {0.1}, None, [0.05]),
        ("WARMUP_RATIO", 0.0, "0.0", {0.1, 0.05, 0.025, 0.0125}, None, []),
        ("WARMDOWN_RATIO", 0.5, "0.5", {0.6, 0.4}, None, [0.55, 0.45]),
        # ints: the midpoint must be a new integer; after +-1 the +-25 % gaps halve
        ("WIDTH", 64, "64", {128, 32, 80, 48, 65, 63}, None, [56, 72, 96]),
        ("WIDTH", 64, "64", {65, 63, 80, 72, 48}, None, [56, 68]),  # toward the value, never 76
        ("DEPTH", 2, "2", {1, 3, 4}, None, []),
        # no refinement for switches and zero floats
        ("USE_FLASH", True, "True", {0.0}, None, []),
        ("WEIGHT_DECAY", 0.0, "0.0", {0.01, 0.1}, None, []),
    ],
    ids=["float-coarse-tried", "float-second-level", "float-kept-down", "float-scientific", "float-negative",
         "float-at-resolution", "float-skip-too-close", "float-other-sign", "beta", "beta-near-one",
         "fraction-from-zero", "fraction-at-resolution", "fraction-both-sides", "int-after-coarse",
         "int-fill-gaps", "int-adjacent", "switch", "zero-float"],
)
def test_refinements(name, value, like, seen, direction, expected):
    kind = step_kind(name, value, is_flag(name, value))
    assert refinements(value, like, kind, seen, direction) == pytest.approx(expected, rel=2e-3)


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


@pytest.mark.parametrize(
    "value, like, number, expected",
    [
        (0.9, "0.9", 0.95, "0.95"),
        (0.999, "0.999", 0.9995, "0.9995"),  # three significant digits of 1-beta, not of beta
        (0.95, "0.95", 0.92928932, "0.9293"),
        (True, "True", 0.0, "False"),
        (1, "1", 0.0, "0"),
        (64, "64", 72.0, "72"),
        (3e-4, "3e-4", 3.674e-4, "3.67e-4"),
    ],
    ids=["beta", "beta-near-one", "beta-refined", "bool", "switch-int", "int", "scientific"],
)
def test_literal_for(value, like, number, expected):
    kind = step_kind("ADAM_BETA2" if like.startswith("0.9") else "X", value)
    assert literal_for(value, like, kind, number) == expected


def one_line_diff(old, new):
    return [l for l in difflib.ndiff(old.splitlines(), new.splitlines()) if l[:1] in "+-"]


def test_proposal_changes_one_constant_and_keeps_the_comment():
    base = {"train.py": "import torch\n\nLR = 3e-4  # learning rate\nprint(LR)\n"}
    proposal = OfflineProposer().propose(base, [])
    assert proposal.files == {"train.py": "import torch\n\nLR = 9e-4  # learning rate\nprint(LR)\n"}
    assert proposal.change == {"file": "train.py", "name": "LR", "old": "3e-4", "new": "9e-4"}
    assert proposal.description == "LR 3e-4 -> 9e-4"
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
    assert first.change["new"] == "0.12"
    history = [history_record("LR", "0.04", "0.12")]
    second = OfflineProposer().propose(base, history)
    assert second.change["new"] == "0.0133"
    assert "tried 1 time(s) without a keep" in second.rationale
    history.append(history_record("LR", "0.04", "0.0133"))
    third = OfflineProposer().propose(base, history)
    assert third.change["new"] == "0.06"


def test_the_value_a_change_left_counts_as_tried():
    # WIDTH 64 -> 128 was kept and 128 -> 256 discarded: 64 and 256 were both measured
    base = {"train.py": "WIDTH = 128\n"}
    history = [history_record("WIDTH", "64", "128", status="keep"), history_record("WIDTH", "128", "256")]
    assert OfflineProposer().propose(base, history).change["new"] == "160"  # the +25 % step comes next
    assert OfflineProposer().propose(base, history[1:]).change["new"] == "64"


@pytest.mark.parametrize(
    "source, kept_old, kept_new, default_next, pushed_next",
    [
        ("LR = 0.02\n", "0.04", "0.02", "0.06", "0.00667"),
        ("DEPTH = 6\n", "8", "6", "7", "5"),
    ],
    ids=["float-went-down", "int-went-down"],
)
def test_continues_a_kept_direction(source, kept_old, kept_new, default_next, pushed_next):
    base = {"train.py": source}
    name = source.split(" ")[0]
    assert OfflineProposer().propose(base, []).change["new"] == default_next  # first step: up
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
    base = {"train.py": TRAIN.replace("LR = 3e-4", "STEP_SIZE = 3e-4")}
    names = {OfflineProposer().propose(base, [], experiment_id=i).change["name"] for i in range(20)}
    assert len(names) >= 3


@pytest.mark.parametrize("name, first", [("LR", True), ("LEARNING_RATE", True), ("MATRIX_LR", True),
                                          ("CPU_LR_DECAY", True), ("LRU_SIZE", False), ("WIDTH", False)])
def test_learning_rates_come_first_among_equally_tried_constants(name, first):
    base = {"train.py": f"DEPTH = 4\nWIDTH_MULT = 2.0\n{name} = 0.5\n"}
    names = {OfflineProposer().propose(base, [], experiment_id=i).change["name"] for i in range(12)}
    assert (names == {name}) is first


def test_avoid_skips_a_refused_value():
    base = {"train.py": "LR = 0.04\n"}
    proposal = OfflineProposer().propose(base, [], avoid={("LR", "0.12")})
    assert proposal.change["new"] == "0.0133"


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
    with pytest.raises(ProposalError, match="tried every value it can reach") as raised:
        OfflineProposer().propose(base, history, avoid=avoid)
    # it names only what exists: adding constants, editing by hand, the anthropic proposer
    assert "add constants, edit train.py by hand, or set `proposer: anthropic`" in str(raised.value)


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


def propose_all_discarded(source, limit=60, **kwargs):
    """Propose on one unchanging head, discarding everything, until the proposer stops."""
    base, history = {"train.py": source}, []
    for i in range(limit):
        try:
            proposal = OfflineProposer().propose(base, history, experiment_id=i, **kwargs)
        except ProposalError:
            break
        history.append(history_record(proposal.change["name"], proposal.change["old"], proposal.change["new"]))
    return [h["change"]["new"] for h in history]


@pytest.mark.parametrize(
    "source, first, count",
    [
        ("LR = 0.04\n", ["0.12", "0.0133", "0.06", "0.0267", "0.049", "0.0327", "0.0443", "0.0362"], 26),
        ("WIDTH = 64\n", ["128", "32", "80", "48", "65", "63", "56", "72", "60", "68"], 13),
        ("DEPTH = 4\n", ["8", "2", "5", "3", "6"], 5),
        ("ADAM_BETA2 = 0.95\n", ["0.975", "0.9", "0.9293", "0.9646"], 14),
        ("WARMUP_RATIO = 0.0\n", ["0.1", "0.05", "0.025", "0.0125"], 4),
        ("USE_BIAS = 1\n", ["0"], 1),
        ("STEPS = 1000\n", ["1250", "750", "2000", "500", "1001", "999", "875", "1125"], 20),
    ],
    ids=["float", "pow2-int", "small-int", "beta", "fraction", "switch", "large-int"],
)
def test_coarse_steps_then_finer_ones_until_the_resolution(source, first, count):
    values = propose_all_discarded(source)
    assert values[:len(first)] == first
    assert len(values) == count and len(set(map(float, values))) == count  # finite, and never a repeat


def measured(name, old, new, parent, status="discard", evidence=None, id_=1):
    return {"id": id_, "kind": "experiment", "status": status, "parent": parent, "evidence": evidence or {},
            "change": {"file": "train.py", "name": name, "old": old, "new": new}}


def test_values_measured_against_this_head_are_never_proposed_again():
    base = {"train.py": "DEPTH = 2\n"}
    history = [measured("DEPTH", "2", new, "head") for new in ("3", "1", "4")]
    with pytest.raises(ProposalError, match="on this head"):
        OfflineProposer().propose(base, history, base_commit="head")


def test_values_measured_against_an_older_head_come_back_after_untried_ones():
    base = {"train.py": "LR = 0.04\n"}
    history = [measured("LR", "0.04", "0.12", "old", id_=3)]
    assert OfflineProposer().propose(base, history, base_commit="new").change["new"] == "0.0133"  # untried first
    history = [measured("LR", "0.04", new, "old", id_=i) for i, new in enumerate(propose_all_discarded("LR = 0.04\n"))]
    with pytest.raises(ProposalError):  # without base_commit every value on any head counts (old callers)
        OfflineProposer().propose(base, history)
    again = OfflineProposer().propose(base, history, base_commit="new")
    assert again.change["new"] == "0.0405"  # every value is a re-try: the nearest comes first
    assert "measured only against an older head (experiment 0013)" in again.rationale
    assert "the head has moved since" in again.rationale


def test_a_kept_change_can_be_undone_once_the_head_moved():
    # DEPTH 1 -> 2 was kept (head h2); 3 and 4 were then discarded on h2: going back to 1 is a re-try
    base = {"train.py": "DEPTH = 2\n"}
    history = [measured("DEPTH", "1", "2", "h1", status="keep"),
               measured("DEPTH", "2", "3", "h2"), measured("DEPTH", "2", "4", "h2")]
    assert OfflineProposer().propose(base, history, base_commit="h2").change["new"] == "1"
    with pytest.raises(ProposalError):
        OfflineProposer().propose(base, history)


NOISE = {"sigma": 0.1}


@pytest.mark.parametrize(
    "outcomes, expected, why",
    [
        ({"3": ("discard", -1.0), "1": ("discard", -0.05)}, "1", "short of the head by only 0.5σ"),
        ({"3": ("discard", -0.08), "1": ("discard", -0.05)}, "1", "0.5σ"),  # two near misses: the closer
        ({"3": ("discard", 0.02), "1": ("discard", -0.05)}, "3", "no worse than the head within the noise"),
        ({"3": ("discard", -1.0), "1": ("crash", None)}, "3", "older head (experiment"),  # a crash comes last
        ({"3": ("discard", -0.5), "4": ("discard", -0.3)}, "3", "older head"),  # far misses: the nearer value
        ({"3": ("discard", 0.0, None), "1": ("discard", -0.2, None)}, "3", "within the noise"),  # greedy: a tie
        # the decision rule's own flags win over the ratio: near_miss (grey zone), noisier (only looked close)
        ({"3": ("discard", -0.5, 0.1, {"near_miss": True}), "1": ("discard", -0.2)}, "3", "only 1.0σ"),
        ({"3": ("discard", -0.05, 0.1, {"noisier": True}), "1": ("discard", -0.08)}, "1", "only 0.8σ"),
    ],
    ids=["near-beats-far", "closer-near-miss", "gain-not-kept", "crash-last", "nearest-far-miss", "greedy-tie",
         "flagged-near-miss", "noisier-is-not-near"],
)
def test_near_misses_are_re_tried_first(outcomes, expected, why):
    base = {"train.py": "DEPTH = 2\n"}
    history = []
    for i, (new, (status, gain, *rest)) in enumerate(outcomes.items()):
        sigma = rest[0] if rest else NOISE["sigma"]
        evidence = {"improvement": gain, "sigma": sigma, **(rest[1] if len(rest) > 1 else {})} if gain is not None else {}
        history.append(measured("DEPTH", "2", new, "old", status=status, evidence=evidence, id_=i + 1))
    # every never-tried value is measured on this head, so only re-tries are left
    history += [measured("DEPTH", "2", new, "head") for new in ("3", "1", "4") if new not in outcomes]
    proposal = OfflineProposer().propose(base, history, base_commit="head")
    assert proposal.change["new"] == expected
    assert why in proposal.rationale


@pytest.mark.parametrize(
    "tries_a, near, tries_b, expected",
    [
        (1, False, 2, {"B"}),  # 1 + 2 for the re-try > 2: the untried value of B first
        (1, False, 4, {"USE_A"}),  # 3 < 4: B has had its share, A's re-try comes first
        (1, False, 3, {"USE_A", "B"}),  # a tie: the seeded tie-break spreads over both
        (1, True, 3, {"USE_A"}),  # a near miss costs 1, not 2
        (1, True, 1, {"B"}),
    ],
    ids=["untried-first", "re-try-after-its-share", "tie", "near-miss-costs-one", "near-miss-still-waits"],
)
def test_a_re_try_counts_as_extra_tries_across_constants(tries_a, near, tries_b, expected):
    # USE_A = 1 is a switch whose other value (0) was measured only on an older head; B has untried values
    base = {"train.py": "USE_A = 1\nB = 0.5\n"}
    evidence = {"improvement": -0.01 if near else -1.0, "sigma": 0.1}
    history = ([measured("USE_A", "1", "0", "old", evidence=evidence)] * tries_a
               + [measured("B", "0.5", "0.75", "head")] * tries_b)
    names = {OfflineProposer().propose(base, history, experiment_id=i, base_commit="head").change["name"]
             for i in range(12)}
    assert names == expected


def test_a_try_note_is_re_proposed_against_a_new_head_only():
    base = {"train.py": "LR = 0.04\nWIDTH = 64\n"}
    history = [measured("LR", "0.04", "0.1", "old"),
               {"id": 5, "kind": "try", "status": "note", "text": "LR 0.1", "by": "ana"}]
    assert OfflineProposer().propose(base, history, base_commit="new").description == "LR 0.04 -> 0.1"
    assert "@ana" not in OfflineProposer().propose(base, history).rationale  # old callers: 0.1 counts as tried
    history.insert(1, measured("LR", "0.04", "0.1", "new"))
    assert "@ana" not in OfflineProposer().propose(base, history, base_commit="new").rationale


@pytest.mark.parametrize(
    "source, new",
    [
        ("USE_FLASH = True  # flash attention\n", "False"),
        ("SHOW_PRICE = 0  # 1: add the price sentence\n", "1"),
        ("TORCH_COMPILE = 1\n", "0"),
        ("ADAM_BETA2 = 0.999\n", "0.9995"),  # 1-beta keeps its digits: not 1.0
    ],
    ids=["bool", "commented-switch", "named-switch", "beta-near-one"],
)
def test_switches_and_betas_in_a_proposal(source, new):
    base = {"train.py": "import torch\n" + source}
    proposal = OfflineProposer().propose(base, [])
    assert proposal.change["new"] == new
    assert validate(proposal, base, ("train.py",))
    history = [history_record(proposal.change["name"], proposal.change["old"], new)]
    if new in ("False", "1", "0"):  # a switch has one other value: toggled once, then done on this head
        with pytest.raises(ProposalError):
            OfflineProposer().propose(base, history)


def test_avoid_compares_numbers_not_spelling():
    proposal = OfflineProposer().propose({"train.py": "LR = 0.04\n"}, [], avoid={("LR", "1.2e-1")})
    assert proposal.change["new"] == "0.0133"


def test_a_rejected_switch_is_not_toggled_that_way_again():
    # USE_BIAS 1 -> 0 was kept, then rejected and reverted by hand: 0 is not proposed again, on any head
    base = {"train.py": "USE_BIAS = 1\n"}
    history = [measured("USE_BIAS", "1", "0", "h1", status="keep", id_=1),
               {"id": 2, "kind": "reject", "status": "note", "about": 1, "text": "keep the bias", "by": "ana"}]
    with pytest.raises(ProposalError):
        OfflineProposer().propose(base, history, base_commit="h3")
