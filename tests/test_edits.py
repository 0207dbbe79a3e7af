"""bot.proposers.edits: model answers (tool input or prose) read into file texts. Pure."""

import pytest

from bot.errors import ProposalError
from bot.proposers.edits import apply_edits, files_from_input, files_from_text, rebase_files

TRAIN = (
    "import torch\n"
    "\n"
    "LR = 0.04  # learning rate\n"
    "WIDTH = 64  # model width\n"
    "\n"
    "def block(x):\n"
    "    y = x * 2\n"
    "    return y\n"
    "\n"
    "def head(x):\n"
    "    y = x * 2\n"
    "    return y + 1\n"
)
BASE = {"train.py": TRAIN}


@pytest.mark.parametrize("search, replace, expected_line", [
    ("LR = 0.04  # learning rate", "LR = 0.05  # learning rate", "LR = 0.05  # learning rate"),
    ("LR = 0.04  # learning rate\r\n", "LR = 0.06  # learning rate\r\n", "LR = 0.06  # learning rate"),  # CRLF
    ("LR = 0.04  # learning rate   ", "LR = 0.07", "LR = 0.07"),  # trailing spaces in the search
    ("\n\nWIDTH = 64  # model width\n\n", "WIDTH = 96  # model width", "WIDTH = 96  # model width"),
], ids=["exact", "crlf", "trailing-space", "blank-lines-around"])
def test_edits_apply_with_the_drift_models_add(search, replace, expected_line):
    data = {"description": "change", "rationale": "why", "edits": [{"file": "train.py", "search": search, "replace": replace}]}
    description, rationale, files, _ = files_from_input(data, BASE)
    assert (description, rationale) == ("change", "why")
    assert expected_line in files["train.py"].split("\n")
    assert "\r" not in files["train.py"]


def test_an_indentation_shifted_search_is_reindented():
    edit = {"file": "train.py", "search": "def head(x):\n  y = x * 2\n  return y + 1", "replace":
            "def head(x):\n  y = x * 3\n  return y + 1"}
    text = apply_edits(BASE, [edit])["train.py"]
    assert "def head(x):\n    y = x * 3\n    return y + 1" in text
    assert "def block(x):\n    y = x * 2\n" in text  # the other, similar function is untouched


@pytest.mark.parametrize("edit, message", [
    ({"file": "train.py", "search": "    y = x * 2\n", "replace": "    y = x * 4\n"}, "matches 2 places"),
    ({"file": "train.py", "search": "LR = 0.4", "replace": "LR = 0.5"}, "not in the file; the closest line is 3"),
    ({"file": "train.py", "search": "", "replace": "x"}, "search text is empty"),
    ({"file": "train.py", "search": "LR = 0.04", "replace": "LR = 0.04"}, "identical"),
    ({"file": "model.py", "search": "x", "replace": "y"}, "there is no file model.py"),
], ids=["ambiguous", "missing", "empty", "no-op", "unknown-file"])
def test_edits_that_cannot_apply_say_why(edit, message):
    with pytest.raises(ProposalError, match=message):
        apply_edits(BASE, [edit])


@pytest.mark.parametrize("data, message", [
    ({"description": "x", "rationale": "y"}, "no edits"),
    ({"description": "x", "rationale": "y", "edits": "LR = 1"}, "must be lists"),
    ({"description": "x", "rationale": "y", "edits": [{"file": "train.py", "search": 1, "replace": "a"}]}, "edits\\[1\\]"),
    ({"description": "x", "rationale": "y", "files": [{"file": "train.py"}]}, "files\\[1\\]"),
    (["not", "an", "object"], "not an object"),
], ids=["nothing", "edits-not-list", "edit-not-strings", "file-no-content", "not-object"])
def test_malformed_tool_inputs_are_refused(data, message):
    with pytest.raises(ProposalError, match=message):
        files_from_input(data, BASE)


def test_a_whole_file_and_a_new_file():
    data = {"description": "rewrite", "rationale": "r",
            "files": [{"file": "train.py", "content": "print(1)\r\n"}, {"file": "extra.py", "content": "X = 1\n"}]}
    _, _, files, _ = files_from_input(data, BASE)
    assert files == {"train.py": "print(1)\n", "extra.py": "X = 1\n"}


FENCED_JSON = '''I suggest raising the learning rate.

```json
{"description": "LR 0.04 -> 0.05", "rationale": "faster start",
 "edits": [{"file": "train.py", "search": "LR = 0.04", "replace": "LR = 0.05"}]}
```
'''
SEARCH_REPLACE = '''Description: WIDTH 64 -> 96
Rationale: a wider model uses the budget better.

train.py
```python
<<<<<<< SEARCH
WIDTH = 64  # model width
=======
WIDTH = 96  # model width
>>>>>>> REPLACE
```
'''
WHOLE_FILE = "**Change:** LR to 0.06\n\nHere is the file:\n\n```python\n" + TRAIN.replace("0.04", "0.06") + "```\n"


@pytest.mark.parametrize("text, description, line", [
    (FENCED_JSON, "LR 0.04 -> 0.05", "LR = 0.05  # learning rate"),
    (SEARCH_REPLACE, "WIDTH 64 -> 96", "WIDTH = 96  # model width"),
    (SEARCH_REPLACE.replace("\n", "\r\n"), "WIDTH 64 -> 96", "WIDTH = 96  # model width"),
    (WHOLE_FILE, "LR to 0.06", "LR = 0.06  # learning rate"),
], ids=["fenced-json", "search-replace", "search-replace-crlf", "whole-file-fence"])
def test_text_answers_are_read(text, description, line):
    got_description, _, files, _ = files_from_text(text, BASE)
    assert got_description == description
    assert line in files["train.py"].split("\n")


def test_prose_without_a_change_is_refused_with_the_tool_named():
    with pytest.raises(ProposalError, match="propose_change"):
        files_from_text("I think we should try a bigger model, but I am not sure.", BASE)


def test_a_block_naming_no_file_among_several_is_refused():
    two = {"train.py": TRAIN, "model.py": "X = 1\n"}
    with pytest.raises(ProposalError, match="which file"):
        files_from_text("<<<<<<< SEARCH\nX = 1\n=======\nX = 2\n>>>>>>> REPLACE\n", two)


def test_rebase_moves_a_change_onto_a_head_that_changed_elsewhere():
    proposed = {"train.py": TRAIN.replace("    return y + 1", "    return y + 2")}
    new_head = {"train.py": TRAIN.replace("LR = 0.04", "LR = 0.05")}
    rebased = rebase_files(BASE, proposed, new_head)
    assert rebased == {"train.py": TRAIN.replace("LR = 0.04", "LR = 0.05").replace("    return y + 1", "    return y + 2")}


def test_rebase_gives_up_when_the_changed_lines_moved_on():
    proposed = {"train.py": TRAIN.replace("LR = 0.04", "LR = 0.06")}
    new_head = {"train.py": TRAIN.replace("LR = 0.04", "LR = 0.05")}
    assert rebase_files(BASE, proposed, new_head) is None


def test_rebase_of_an_unmoved_file_is_the_proposal():
    proposed = {"train.py": TRAIN.replace("LR = 0.04", "LR = 0.06")}
    assert rebase_files(BASE, proposed, dict(BASE)) == proposed


def test_rebase_of_an_insertion_next_to_another_insertion():
    base = {"train.py": "A = 1\nB = 2\nC = 3\n"}
    proposed = {"train.py": "A = 1\nB = 2\nK2 = 2\nC = 3\n"}
    new_head = {"train.py": "A = 1\nB = 2\nK1 = 1\nC = 3\n"}
    assert rebase_files(base, proposed, new_head) == {"train.py": "A = 1\nB = 2\nK2 = 2\nK1 = 1\nC = 3\n"}
