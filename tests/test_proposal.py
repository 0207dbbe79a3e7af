"""bot.proposal: the checks a proposed change must pass before any compute is spent."""

import pytest

from bot.errors import ProposalError
from bot.proposal import Proposal, changed_lines, diff_hash, is_editable, validate

BASE = {
    "train.py": (
        "import os\n"
        "import numpy as np\n"
        "\n"
        "SEED = 42  # random seed\n"
        "LR = 0.04  # learning rate\n"
        "WIDTH = 64\n"
        "print(LR * WIDTH)\n"
    )
}
EDITABLE = ("train.py",)
HARNESS = ("prepare.py",)


def edit(old, new, path="train.py", base=BASE):
    assert old in base[path]
    return {path: base[path].replace(old, new, 1)}


def proposal(files, description="a change"):
    return Proposal(description=description, rationale="because", files=files)


@pytest.mark.parametrize(
    "files",
    [
        edit("LR = 0.04", "LR = 0.06"),
        edit("import os\n", "import os\nimport math\n"),
        edit("import os\n", "import os\nimport torch\nimport torch.nn.functional as F\n"),
        edit("import os\n", "import os\nfrom collections import deque\nimport itertools\n"),
        edit("import os\n", "import os\nimport numpy.linalg\n"),  # numpy is already imported
        edit("import os\n", "import os\nfrom prepare import evaluate_bpb\n"),
        edit("print(LR * WIDTH)", "from . import sibling\nprint(LR * WIDTH)"),  # relative: not a package
        # a seed changed together with a real change is a real change
        edit("SEED = 42  # random seed\nLR = 0.04", "SEED = 43  # random seed\nLR = 0.05"),
    ],
    ids=["constant", "import-math", "import-torch", "import-stdlib", "import-already-present",
         "import-harness", "relative-import", "seed-and-more"],
)
def test_validate_accepts(files):
    digest = validate(proposal(files), BASE, EDITABLE, HARNESS)
    assert digest == diff_hash(BASE, files)
    assert len(digest) == 16 and int(digest, 16) >= 0


@pytest.mark.parametrize(
    "prop, editable, harness, message_parts",
    [
        (proposal({"prepare.py": "x = 1\n"}), EDITABLE, HARNESS, ["prepare.py is the frozen harness", "train.py"]),
        # the harness is refused even when a broad glob would make it editable
        (proposal({"prepare.py": "x = 1\n"}), ("*.py",), HARNESS, ["prepare.py is the frozen harness"]),
        (proposal({"model.py": "x = 1\n"}), EDITABLE, HARNESS, ["model.py is not editable", "train.py"]),
        (proposal({"src/deep.txt": "x"}), ("src/*.py",), HARNESS, ["src/deep.txt is not editable", "src/*.py"]),
        (proposal({"train.py": BASE["train.py"], "prepare.py": "x = 1\n"}), EDITABLE, HARNESS, ["frozen harness"]),
        (proposal(BASE), EDITABLE, HARNESS, ["changes nothing"]),
        (proposal({}), EDITABLE, HARNESS, ["changes no file"]),
        (proposal(edit("LR = 0.04", "LR = 0.06"), description="  "), EDITABLE, HARNESS, ["no description"]),
        (proposal({"train.py": b"LR = 1\n"}), EDITABLE, HARNESS, ["not text"]),
        (proposal(edit("WIDTH = 64\n", "WIDTH = (64\n")), EDITABLE, HARNESS,
         ["train.py no longer parses", "line 6"]),
        (proposal(edit("import os\n", "import os\nimport requests\n")), EDITABLE, HARNESS,
         ["train.py imports requests", "the training box may not have"]),
        (proposal(edit("import os\n", "import os\nfrom transformers.models import gpt2\nimport requests\n")),
         EDITABLE, HARNESS, ["imports requests, transformers"]),
        (proposal(edit("SEED = 42", "SEED = 1337")), EDITABLE, HARNESS, ["only changes a random seed"]),
        (proposal(edit("print(LR * WIDTH)", "torch.manual_seed(SEED)\nprint(LR * WIDTH)")), EDITABLE, HARNESS,
         ["only changes a random seed"]),
    ],
    ids=["harness", "harness-under-glob", "not-editable", "glob-wrong-extension", "harness-among-others",
         "no-change", "no-files", "no-description", "bytes", "syntax-error", "third-party-import",
         "several-imports-sorted", "seed-only", "seed-call-added"],
)
def test_validate_refuses(prop, editable, harness, message_parts):
    with pytest.raises(ProposalError) as caught:
        validate(prop, BASE, editable, harness)
    for part in message_parts:
        assert part in str(caught.value)


def test_validate_refuses_a_duplicate():
    files = edit("LR = 0.04", "LR = 0.06")
    digest = validate(proposal(files), BASE, EDITABLE, HARNESS)
    with pytest.raises(ProposalError, match=f"already tried \\(diff {digest}\\)"):
        validate(proposal(files, description="same again"), BASE, EDITABLE, HARNESS, tried_hashes=[digest])
    other = edit("LR = 0.04", "LR = 0.05")
    assert validate(proposal(other), BASE, EDITABLE, HARNESS, tried_hashes=[digest]) != digest


def test_validate_allowed_imports_can_be_widened():
    files = edit("import os\n", "import os\nimport einops\n")
    with pytest.raises(ProposalError, match="einops"):
        validate(proposal(files), BASE, EDITABLE, HARNESS)
    assert validate(proposal(files), BASE, EDITABLE, HARNESS, allowed_imports={"einops"})


def test_validate_new_file_under_a_glob():
    files = {"src/model.py": "import torch\nDEPTH = 4\n"}
    assert validate(proposal(files), {}, ("src/*.py",), HARNESS)


def test_validate_non_python_file_is_not_parsed():
    base = {"program.md": "# notes\n"}
    files = {"program.md": "# notes\n(unbalanced\n"}
    assert validate(proposal(files), base, ("*.md",), HARNESS)


def test_validate_an_import_already_in_a_broken_base_is_checked_against_nothing():
    # when the base itself does not parse, every third-party import in the proposal counts as new
    base = {"train.py": "import requests\nx = (\n"}
    with pytest.raises(ProposalError, match="imports requests"):
        validate(proposal({"train.py": "import requests\nx = 1\n"}), base, EDITABLE, HARNESS)


@pytest.mark.parametrize("path", ["./prepare.py", "sub/../prepare.py"], ids=["dot-slash", "dot-dot"])
def test_validate_refuses_the_harness_under_another_spelling(path):
    with pytest.raises(ProposalError, match="frozen harness"):
        validate(proposal({path: "x = 2\n"}), {path: "x = 1\n"}, ("*.py",), HARNESS)


@pytest.mark.parametrize(
    "path, patterns, expected",
    [
        ("train.py", ("train.py",), True),
        ("train.py", ("model.py",), False),
        ("src/model.py", ("src/*.py",), True),
        ("src/model.txt", ("src/*.py",), False),
        ("model.py", ("src/*.py",), False),
        ("Train.py", ("train.py",), False),  # case matters, on every OS
        ("b.py", ("a.py", "b.py"), True),
        ("train.py", (), False),
        ("src/sub/model.py", ("src/*.py",), False),  # `*` stays within one path segment
        ("src/sub/model.py", ("src/**/*.py",), True),
    ],
    ids=["exact", "other", "glob", "glob-extension", "glob-directory", "case", "second-pattern", "none",
         "glob-not-across-slash", "globstar"],
)
def test_is_editable(path, patterns, expected):
    assert is_editable(path, patterns) is expected


def test_changed_lines_has_no_positions_or_headers():
    assert changed_lines("a\nb\nc\n", "a\nB\nc\n") == ["-b", "+B"]
    assert changed_lines("a\n", "a\n") == []


SHIFTED = {"train.py": "# a comment added above\n" + BASE["train.py"]}


@pytest.mark.parametrize(
    "base_a, files_a, base_b, files_b, same",
    [
        # the same edit, one line further down in a file with an extra line above: same identity
        (BASE, edit("LR = 0.04", "LR = 0.06"), SHIFTED, edit("LR = 0.04", "LR = 0.06", base=SHIFTED), True),
        (BASE, edit("LR = 0.04", "LR = 0.06"), BASE, edit("LR = 0.04", "LR = 0.06"), True),
        (BASE, edit("LR = 0.04", "LR = 0.06"), BASE, edit("LR = 0.04", "LR = 0.05"), False),
        (BASE, edit("LR = 0.04", "LR = 0.06"), BASE, edit("WIDTH = 64", "WIDTH = 128"), False),
        # the same text change in another file is another change
        (BASE, edit("LR = 0.04", "LR = 0.06"),
         {"model.py": BASE["train.py"]}, edit("LR = 0.04", "LR = 0.06", "model.py", {"model.py": BASE["train.py"]}),
         False),
        # a reverted edit is not the edit
        (BASE, edit("LR = 0.04", "LR = 0.06"),
         edit("LR = 0.04", "LR = 0.06"), {"train.py": BASE["train.py"]}, False),
    ],
    ids=["position-independent", "deterministic", "different-value", "different-line", "different-file",
         "reverse"],
)
def test_diff_hash(base_a, files_a, base_b, files_b, same):
    assert (diff_hash(base_a, files_a) == diff_hash(base_b, files_b)) is same


def test_diff_hash_sees_lines_that_start_with_dashes():
    base_a = {"notes.md": "intro\n---\nend\n"}
    base_b = {"notes.md": "intro\n-- draft\nend\n"}
    assert diff_hash(base_a, {"notes.md": "intro\nend\n"}) != diff_hash(base_b, {"notes.md": "intro\nend\n"})
