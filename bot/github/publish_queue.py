"""GitHub publishing off the critical path: the publisher's per-experiment writes run on one
worker thread, in order, with the publisher's own pacing, while the next experiment trains.

Paced at 8 writes a minute (GitHub's content-creation limits), one experiment's PR, labels, body,
ready, merge and report cost about a minute; done inline, the GPU would idle for it after every
run. Here the loop only hands the writes over. Order is kept (one worker, FIFO), so a kept
experiment's fast-forward on GitHub always precedes the next experiment's PR into the tracking
branch. The backlog is bounded (`max_backlog` experiments) so a kill leaves no more unpublished
than `Publisher.reconcile` finishes on the next start. A write that fails for good (a stale
merge, GitHub down past its retries) stops the loop at its next call, as it would inline.
"""

import queue
import threading


class BackgroundPublisher:
    def __init__(self, publisher, max_backlog=2):
        self.inner = publisher
        self.max_backlog = max_backlog
        self._jobs = queue.Queue()
        self._numbers = {}  # experiment id -> PR number, once its PR is open
        self._opened = {}  # experiment id -> set when its PR step ran (or failed)
        self._error = None
        self._idle = threading.Condition()
        self._queued = 0  # writes handed over and not yet done
        self._unpublished = 0  # experiments started and not yet fully published (the backlog)
        threading.Thread(target=self._work, name="publisher", daemon=True).start()

    def __getattr__(self, name):  # set-up, reconcile, commands: the publisher itself, inline
        return getattr(self.inner, name)

    # ---- what the loop calls ----------------------------------------------------------------

    def started(self, exp_id, branch, commit, base, description, rationale=""):
        """Queue the push and the draft PR; return the PR number if it is already known (it is
        normally known by the time the run ends: see `pr_number`)."""
        self._check()
        self._wait_for_room()
        with self._idle:
            self._unpublished += 1

        opened = self._opened[exp_id] = threading.Event()

        def open_pr():
            try:
                self._numbers[exp_id] = self.inner.started(exp_id, branch, commit, base, description, rationale)
            finally:
                opened.set()

        self._put(open_pr, False)
        return self._numbers.get(exp_id)

    def pr_number(self, exp_id):
        """The experiment's PR number, for its ledger row. Waits only if the PR is not open yet,
        which happens only when a run is shorter than the writes queued before it."""
        opened = self._opened.get(exp_id)
        while opened is not None and not opened.wait(0.5) and self._error is None:
            pass  # (after a failure the step is skipped and the error is raised below)
        self._check()
        return self._numbers.get(exp_id)

    def guard(self, record, reference):
        return self.inner.guard(record, reference)  # pure: it decides what the ledger says

    def decided(self, record, reference, records):
        """Queue the result's writes (body, labels, merge or close, report)."""
        self._check()

        def publish():  # the loop passes [*records, record]; PR numbers opened meanwhile are filled in
            linked = [dict(r, pr=r.get("pr") or self._numbers.get(r.get("id"))) for r in records]
            self.inner.decided(linked[-1], reference, linked)

        self._put(publish, True)

    def flush(self, timeout=None):
        """Wait until everything handed over is on GitHub; raise what failed."""
        with self._idle:
            self._idle.wait_for(lambda: self._queued == 0 or self._error is not None, timeout)
        self._check()

    # ---- the worker ---------------------------------------------------------------------------

    def _put(self, job, ends_experiment):
        with self._idle:
            self._queued += 1
        self._jobs.put((job, ends_experiment))

    def _work(self):
        while True:
            job, ends_experiment = self._jobs.get()
            try:
                if self._error is None:  # after a failure nothing more is written: the loop stops
                    job()
            except Exception as exc:  # handed to the loop's thread, which raises it
                self._error = exc
            finally:
                with self._idle:
                    self._queued -= 1
                    self._unpublished -= 1 if ends_experiment else 0
                    self._idle.notify_all()

    def _wait_for_room(self):
        with self._idle:
            self._idle.wait_for(lambda: self._unpublished < self.max_backlog or self._error is not None)
        self._check()

    def _check(self):
        if self._error is not None:  # sticky: every later call says the same
            raise self._error
