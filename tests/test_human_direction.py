"""`/autoresearch try` and `reject` notes reach the offline proposer."""

import pytest

from bot.proposers.offline import OfflineProposer, human_direction

BASE = {"train.py": "LR = 0.04  # learning rate\nWIDTH = 64  # width\nDEPTH = 2  # blocks\n"}


def note(id_, kind, text, about=1, by="ana"):
    return {"id": id_, "kind": kind, "status": "note", "text": text, "about": about, "by": by}


def experiment(id_, name, old, new, status="discard"):
    return {"id": id_, "kind": "experiment", "status": status,
            "change": {"file": "train.py", "name": name, "old": old, "new": new}}


@pytest.mark.parametrize("text, expected", [
    ("LR 0.1", [("LR", "0.1", "ana")]),
    ("LR=0.1", [("LR", "0.1", "ana")]),
    ("set LR to 1e-2 please", [("LR", "1e-2", "ana")]),
    ("LR -> .5", [("LR", ".5", "ana")]),
    ("a wider WIDTH", [("WIDTH", None, "ana")]),
    ("something smarter", []),
], ids=["space", "equals", "to", "arrow", "name-only", "no-constant"])
def test_try_notes_are_parsed(text, expected):
    wanted, rejected = human_direction([note(5, "try", text)])
    assert wanted == expected and rejected == {}


def test_a_try_that_was_carried_out_is_no_longer_wanted():
    records = [note(5, "try", "LR 0.1"), experiment(6, "LR", "0.04", "0.1")]
    assert human_direction(records)[0] == []


def test_try_with_a_value_is_proposed_first_with_who_asked():
    proposal = OfflineProposer(seed=1).propose(BASE, [note(5, "try", "WIDTH 96")])
    assert proposal.description == "WIDTH 64 -> 96"
    assert "@ana" in proposal.rationale
    assert "WIDTH = 96  # width" in proposal.files["train.py"]


def test_try_with_a_name_only_makes_that_constant_next():
    for seed in range(5):
        proposal = OfflineProposer(seed=seed).propose(BASE, [note(5, "try", "DEPTH deeper")])
        assert proposal.change["name"] == "DEPTH"


@pytest.mark.parametrize("rejected", [False, True], ids=["kept-pushed-further", "rejected-not-again"])
def test_a_rejected_direction_is_not_proposed_again(rejected):
    base = {"train.py": BASE["train.py"].replace("WIDTH = 64", "WIDTH = 128")}
    history = [experiment(1, "WIDTH", "64", "128", status="keep")]
    if rejected:
        history.append(note(2, "reject", "too slow", about=1))
    assert human_direction(history)[1] == ({"WIDTH": 1} if rejected else {})
    proposals = [OfflineProposer(seed=seed).propose(base, history, experiment_id=0) for seed in range(8)]
    widths = [int(p.change["new"]) for p in proposals if p.change["name"] == "WIDTH"]
    if rejected:
        assert all(width < 128 for width in widths)
    else:  # without the note, the kept direction is pushed further first
        assert proposals[0].description == "WIDTH 128 -> 256"
