"""GitHub mode's lease (bot/github/lease.py, BranchLedger.claim): one `bot run` per tag across machines.
Pure rules table-driven; then the real CLI against the loopback GitHub."""

import json
import time

import pytest

from bot.config import parse_config
from bot.github.lease import (
    conflict,
    lease_ttl,
    new_lease,
    released,
    renewed,
    taken_over,
)

NOW = 1_800_000_000.0
LIVE = new_lease("them", "laptop pid 4242", NOW - 60, 3600, host="laptop", pid=4242)


@pytest.mark.parametrize("current, gone, words", [
    (None, False, None),
    (LIVE, False, "laptop pid 4242"),
    (dict(LIVE, owner="us"), False, None),  # our own
    (released(LIVE, NOW - 1), False, None),
    (dict(LIVE, expires=NOW - 1), False, None),  # stopped renewing: expired
    (LIVE, True, None),  # its process is known to be gone
    (dict(LIVE, expires="soon"), False, None),  # damaged: protects nothing
], ids=["none", "live", "own", "released", "expired", "gone", "damaged"])
def test_conflict(current, gone, words):
    problem = conflict(current, "us", NOW, lambda lease: gone)
    assert (problem is None) == (words is None)
    if words:
        assert words in problem and "another --tag" in problem and "expires at" in problem


def test_renewal_and_takeover_notes():
    assert renewed(LIVE, NOW)["expires"] == NOW + 3600
    assert "took over the lease of laptop pid 4242" in taken_over(dict(LIVE, expires=NOW - 1), "us", NOW)
    assert taken_over(None, "us", NOW) is None and taken_over(released(LIVE, NOW), "us", NOW) is None


def test_the_ttl_outlasts_the_longest_silence_of_a_live_run():
    config = parse_config({"budget_seconds": 300, "replicates": 3, "max_samples": 3})
    assert lease_ttl(config) == 3 * 600 + 900  # three runs up to the timeout each, then propose and publish


def _lease_on_branch(world):
    text = world.bare_file("autoresearch/default-ledger", "lease.json")
    return json.loads(text)


def _branch_ledger(world):
    from bot.github.ledger_branch import BranchLedger
    from bot.gitops import GitRepo

    return BranchLedger(world.work / ".autoresearch" / "default", "val_bpb", GitRepo(world.work),
                        "autoresearch/default-ledger")


def _hold_from_another_machine(world, expires_in):
    ledger = _branch_ledger(world)
    ledger.pull()
    now = time.time()
    ledger.lease = new_lease("laptop-run", "laptop pid 4242", now, expires_in, host="laptop", pid=4242)
    ledger.push()


def test_a_second_machine_is_refused_while_the_lease_lives(github_world):
    world = github_world
    assert world.run(1).exit_code == 0
    assert _lease_on_branch(world)["released"] is True  # a run that ended gave it back
    _hold_from_another_machine(world, expires_in=3600)
    pulls = dict(world.server.pulls)
    result = world.run(1)
    assert result.exit_code == 1
    assert "another `bot run` holds this tag's lease" in result.output and "laptop pid 4242" in result.output
    assert world.server.pulls == pulls  # nothing proposed, trained or published
    assert _lease_on_branch(world)["owner"] == "laptop-run"


def test_an_expired_lease_is_taken_over_with_a_note(github_world):
    world = github_world
    assert world.run(1).exit_code == 0
    _hold_from_another_machine(world, expires_in=-1)  # that machine died an hour ago
    result = world.run(1)
    assert result.exit_code == 0, result.output
    assert "took over the lease of laptop pid 4242" in result.output
    assert _lease_on_branch(world)["released"] is True


def test_rows_from_comment_commands_leave_a_nights_lease_alone(github_world):
    world = github_world
    assert world.run(1).exit_code == 0
    _hold_from_another_machine(world, expires_in=3600)
    recorder = _branch_ledger(world)  # what `bot command --queue` uses: no lease of its own
    recorder.pull()
    recorder.append({"id": 99, "kind": "request", "status": "note", "description": "retry #1"})
    assert _lease_on_branch(world)["owner"] == "laptop-run"
