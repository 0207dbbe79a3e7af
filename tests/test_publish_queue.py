"""bot/github/publish_queue.py: GitHub writes run beside the training, in order, and failures still stop
the loop. A stand-in publisher records calls and can be held, so the checks are about order, never
about timing."""

import threading

import pytest

from bot.errors import BotError
from bot.github.publish_queue import BackgroundPublisher

WAIT = 10  # generous bound for a step that should happen at once; a hang fails instead of blocking


class HeldPublisher:
    """Publisher-shaped: each write waits for `release` (when held) and is logged."""

    def __init__(self, held=False):
        self.calls, self.release = [], threading.Event()
        if not held:
            self.release.set()
        self.fail_on = None
        self.gh = "the GitHub client"

    def _write(self, what):
        assert self.release.wait(WAIT), "never released"
        if what == self.fail_on:
            raise BotError(f"{what} failed")
        self.calls.append(what)

    def started(self, exp_id, branch, commit, base, description, rationale=""):
        self._write(("started", exp_id))
        return 100 + exp_id

    def guard(self, record, reference):
        return dict(record, guarded=True)

    def decided(self, record, reference, records):
        self._write(("decided", record["id"], record.get("pr"), tuple(r.get("pr") for r in records)))

    def prepare(self):
        return "head"


def test_the_loop_goes_on_while_writes_wait():
    inner = HeldPublisher(held=True)
    publisher = BackgroundPublisher(inner, max_backlog=2)
    assert publisher.started(1, "b1", "c1", "p", "one") is None  # handed over; GitHub is slow
    publisher.decided({"id": 1}, None, [{"id": 0, "pr": None}, {"id": 1}])
    assert publisher.started(2, "b2", "c2", "p", "two") is None  # the next experiment starts at once
    assert inner.calls == []  # nothing written yet: the loop did not wait for GitHub
    inner.release.set()
    publisher.flush(WAIT)
    assert inner.calls == [("started", 1), ("decided", 1, 101, (None, 101)), ("started", 2)]


def test_the_ledger_row_gets_the_pr_number_once_the_pr_is_open():
    inner = HeldPublisher()
    publisher = BackgroundPublisher(inner)
    publisher.started(7, "b", "c", "p", "x")
    assert publisher.pr_number(7) == 107 and publisher.pr_number(8) is None


def test_the_backlog_is_bounded_so_a_kill_leaves_little_unpublished():
    inner = HeldPublisher(held=True)
    publisher = BackgroundPublisher(inner, max_backlog=1)
    publisher.started(1, "b1", "c1", "p", "one")
    blocked = threading.Thread(target=publisher.started, args=(2, "b2", "c2", "p", "two"), daemon=True)
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # experiment 1 is not published: experiment 2 waits
    publisher.decided({"id": 1}, None, [{"id": 1}])
    inner.release.set()
    blocked.join(WAIT)
    assert not blocked.is_alive()
    publisher.flush(WAIT)
    assert [c[:2] for c in inner.calls] == [("started", 1), ("decided", 1), ("started", 2)]


def test_a_failed_write_stops_the_loop_at_its_next_call():
    inner = HeldPublisher()
    inner.fail_on = ("decided", 1, 101, (101,))
    publisher = BackgroundPublisher(inner)
    publisher.started(1, "b1", "c1", "p", "one")
    publisher.decided({"id": 1}, None, [{"id": 1}])
    with pytest.raises(BotError, match="failed"):
        publisher.flush(WAIT)
    with pytest.raises(BotError, match="failed"):  # sticky: nothing more is written after it
        publisher.started(2, "b2", "c2", "p", "two")
    assert inner.calls == [("started", 1)]


def test_everything_else_is_the_publisher_itself():
    inner = HeldPublisher()
    publisher = BackgroundPublisher(inner)
    assert publisher.gh == "the GitHub client" and publisher.prepare() == "head"
    assert publisher.guard({"id": 1}, None) == {"id": 1, "guarded": True}
