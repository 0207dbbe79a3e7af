"""The ledger branch: compare-and-swap pushes from two writers, healing after a kill."""

import json

import pytest
from conftest import git, make_repo

from bot.github.ledger_branch import BranchLedger, merge_records
from bot.gitops import GitRepo

BRANCH = "autoresearch/t-ledger"


@pytest.fixture
def two_clones(tmp_path):
    origin = make_repo(tmp_path / "seed", {"train.py": "x = 1\n"})
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(origin), str(bare))
    clones = []
    for name in ("a", "b"):
        git(tmp_path, "clone", "-q", str(bare), str(tmp_path / name))
        clones.append(BranchLedger(tmp_path / name / ".autoresearch", "val_bpb", GitRepo(tmp_path / name), BRANCH))
    return bare, clones


def _remote_ids(bare):
    text = git(bare, "show", f"refs/heads/{BRANCH}:experiments.jsonl")
    return [json.loads(line)["id"] for line in text.splitlines()]


def _row(i, status="keep"):
    return {"id": i, "status": status, "commit": f"{i:040d}", "metric": 3.0 + i / 10, "description": f"row {i}"}


def test_a_lost_race_merges_the_other_writers_rows_instead_of_overwriting(two_clones):
    bare, (a, b) = two_clones
    a.pull(), b.pull()
    a.append(_row(1))
    b.append(_row(2))  # b's head is stale: its push is refused, it merges a's row and pushes again
    assert _remote_ids(bare) == [1, 2]
    assert [r["id"] for r in b.read()] == [1, 2]
    assert git(bare, "rev-list", "--count", f"refs/heads/{BRANCH}") == "2"  # history kept: no force push
    tsv = git(bare, "show", f"refs/heads/{BRANCH}:results.tsv").splitlines()
    assert tsv[0].startswith("commit\tval_bpb") and len(tsv) == 3


def test_rows_written_locally_but_never_pushed_are_pushed_on_the_next_pull(two_clones):
    bare, (a, b) = two_clones
    a.pull()
    a.append(_row(1))
    super(BranchLedger, a).append(_row(2))  # as if killed between the local write and the push
    assert _remote_ids(bare) == [1]
    a.head = None
    assert [r["id"] for r in a.pull()] == [1, 2]
    assert _remote_ids(bare) == [1, 2]
    assert [r["id"] for r in b.pull()] == [1, 2]  # and the next run (another clone) sees them


@pytest.mark.parametrize("remote,local,expected", [
    ([], [], []),
    ([1, 2], [], [1, 2]),
    ([], [1], [1]),
    ([1, 2], [1, 2, 3], [1, 2, 3]),
    ([1, 3], [1, 2], [1, 3, 2]),
])
def test_merge_records(remote, local, expected):
    assert [r["id"] for r in merge_records([_row(i) for i in remote], [_row(i) for i in local])] == expected
