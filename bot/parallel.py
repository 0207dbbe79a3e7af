"""`bot run --parallel N`: N experiments built on the same tracking head train at once.

A batch is N distinct proposals from the head (each validated against the others too), each
with its own id, commit, branch, PR in GitHub mode, ledger row and runner submission (N
processes with the local runner, N remote calls on Modal). Each candidate is judged in its
own thread, so the noise-aware rule's confirmation runs of one start while the others train.

Stacking rule. Of a batch, the best result the decision rule keeps is kept: the tracking
branch moves to it. The others it would also have kept are not, because they were measured
against the old head and a combination is never kept untested: each is recorded as `discard`
with a reason naming the winner, and its change is re-applied on the new head and evaluated
again as a new experiment in the next batch (its row says `reapplied_from`). A change that no
longer applies on the new head is recorded so (in that reason, or as an `invalid` row when the
head moved again before its turn) and dropped. Every other result is recorded as the rule said.

Ctrl-C (or SIGTERM) cancels every run of the batch and records none of them; their branches
are deleted, as the serial loop does. `--iterations` counts experiments, not batches (the last
batch is smaller); `--hours` is checked before each batch; `max_usd` shrinks a batch to what it
can still pay for; `max_consecutive_crashes` counts crashes in id order across batches.

Off the critical path, while a batch trains: the next batch's proposals are asked for (all at
once, for a proposer that takes time), and GitHub writes (the previous batch's decisions, then
this batch's PRs) are made on this thread, in id order.
"""

import dataclasses
import threading
import time

from bot.decide import DISCARD, KEEP, improvement
from bot.errors import ProposalError
from bot.loop import Interrupted, Streaks
from bot.proposing import Asked
from bot.rows import invalid_row


@dataclasses.dataclass
class Candidate:
    id: int
    asked: object  # an Asked, or (spent, reasons) when every proposal was refused
    commit: str = None
    branch: str = None
    pr: int = None
    outcome: tuple = None  # (decision, runs, result) from its judge thread
    error: BaseException = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def runs(self):
        return isinstance(self.asked, Asked)


class Inflight:
    """The runs of one batch, so that Ctrl-C can cancel every one, including one submitted after."""

    def __init__(self):
        self.lock, self.handles, self.stopping = threading.Lock(), [], False

    def watch(self, handle):
        with self.lock:
            if not self.stopping:
                self.handles.append(handle)
                return
        handle.cancel()
        raise Interrupted("stopped before it could run")

    def cancel_all(self):
        with self.lock:
            self.stopping, handles = True, list(self.handles)
        for handle in handles:
            handle.cancel()


class BatchLoop:
    def __init__(self, loop, n):
        self.loop, self.n = loop, int(n)
        self.requeued = []  # (Asked, the head it was measured on, its id): to evaluate on the new head
        self.unpublished = []  # (record, reference): decisions whose GitHub writes are still to make

    def run(self, iterations=None, hours=None):
        """Run batches until `iterations` experiments are done, `hours` pass, or a stop condition."""
        loop = self.loop
        deadline = loop.clock() + hours * 3600 if hours else None
        if loop.runner.name == "local" and not loop.config.budget_steps:
            loop.events("warning", message=(
                f"the local runner starts all {self.n} runs on this machine's one device (GPU or CPU): with a "
                "wall-clock budget each trains on a share of it while the head was measured alone, so experiments "
                "look worse than they are; set a step budget (`budget_steps`), or use a runner with a GPU per run"))
        records, reference = loop.start(ahead=self.n)
        done, streaks, stop = 0, Streaks(loop.config.max_consecutive_crashes), None
        try:
            while stop is None:
                left = self.n if iterations is None else min(self.n, iterations - done)
                if left <= 0:
                    stop = f"finished {done} experiment(s)"
                elif deadline is not None and loop.clock() >= deadline:
                    stop = f"the {hours:g} h limit passed after {done} experiment(s)"
                else:
                    while left > 1 and loop.over_budget(records, more=left):
                        left -= 1  # a smaller batch still fits under max_usd
                    stop = loop.over_budget(records, more=left)
                if stop:
                    break
                ahead = None if iterations is None else iterations - done - left
                batch, stop = self.form(records, reference, left)
                if not batch:
                    break
                new = self.run_batch(batch, records, reference, ahead)
                records = records + new
                done += len(new)
                reference = next((r for r in new if r["status"] == KEEP), reference)
                for record in new:
                    stop = stop or streaks.add(record)
            self.publish()
        finally:
            for asked, _, of in self.requeued:  # said, so a stop never loses one silently
                loop.events("warning", message=f"not re-evaluated on the new head (the run stopped): "
                                               f"{of:04d} {asked.proposal.description}")
        loop.events("stop", reason=stop, experiments=done)
        return {"stop_reason": stop, "experiments": done, "best": reference}

    # ---- forming a batch ------------------------------------------------------------------

    def form(self, records, reference, size):
        """Up to `size` candidates on the head: re-applied changes first, then new proposals.
        Returns (candidates, stop reason or None)."""
        loop, head = self.loop, reference["commit"]
        device = (reference.get("key") or {}).get("device")
        next_id, batch = loop.next_id(records), []

        def chosen():
            return [c.asked for c in batch if c.runs]

        while self.requeued and len(batch) < size:
            asked, old_base, of = self.requeued.pop(0)
            again = loop.source.reapply(asked, old_base, head, records, chosen())
            if not isinstance(again, Asked):  # the head moved again before its turn
                spent = dict(asked.spent, reapplied_from=of)
                again = (spent, [f"{asked.proposal.description}: re-applying {of:04d}'s change: {again}"])
            else:
                again.spent["reapplied_from"] = of
            batch.append(Candidate(next_id + len(batch), again))
        while len(batch) < size:
            try:
                asked = loop.source.obtain(records, head, next_id + len(batch), device, batch=chosen())
            except ProposalError as exc:
                return batch, f"no more proposals: {exc}"
            batch.append(Candidate(next_id + len(batch), asked))
        return batch, None

    # ---- one batch ------------------------------------------------------------------------

    def run_batch(self, batch, records, reference, ahead):
        """Commit, submit, publish, wait, decide and record one batch; return its rows in id order."""
        loop, head, inflight = self.loop, reference["commit"], Inflight()
        try:
            for candidate in batch:
                if candidate.runs:
                    candidate.commit, candidate.branch = loop.commit_proposal(candidate.id, head, candidate.asked)
                    threading.Thread(target=self._judge, args=(candidate, records, reference, inflight),
                                     daemon=True).start()
            self.publish(records)
            if loop.publisher:
                for c in (c for c in batch if c.runs):
                    c.pr = loop.publisher.started(c.id, c.branch, c.commit, head, c.asked.proposal.description,
                                                  c.asked.proposal.rationale)
            if ahead is None or ahead > 0:  # the next batch's proposals are written while this one trains
                running = tuple(c.asked.proposal.description for c in batch if c.runs)
                loop.source.prefetch(head, records, batch[-1].id + 1, (reference.get("key") or {}).get("device"),
                                     running=running, count=self.n if ahead is None else min(self.n, ahead))
            for candidate in (c for c in batch if c.runs):
                while not candidate.done.wait(0.2):  # short waits: Ctrl-C reaches this thread at once
                    pass
                if candidate.error is not None:
                    raise candidate.error
        except BaseException as exc:
            self._abort(batch, inflight)
            if isinstance(exc, (KeyboardInterrupt, Interrupted)):
                ids = ", ".join(f"{c.id:04d}" for c in batch if c.runs)
                raise Interrupted(f"experiment(s) {ids} were stopped and not recorded") from None
            raise
        return self.record(batch, records, reference)

    def _judge(self, candidate, records, reference, inflight):
        try:
            candidate.outcome = self.loop.judge_commit(candidate.id, candidate.commit, records, reference,
                                                       watch=inflight.watch)
        except BaseException as exc:  # noqa: BLE001 (raised again on the main thread)
            candidate.error = exc
        finally:
            candidate.done.set()

    def _abort(self, batch, inflight):
        """Cancel every run of the batch, wait for the judges to return, delete the branches."""
        inflight.cancel_all()
        deadline = time.monotonic() + 60
        for candidate in batch:
            if candidate.commit:
                candidate.done.wait(max(0.0, deadline - time.monotonic()))
        for candidate in batch:
            if candidate.branch and self.loop.git.branch_sha(candidate.branch):
                self.loop.git.git("branch", "-D", candidate.branch)  # never measured: nothing to keep

    # ---- deciding -------------------------------------------------------------------------

    def record(self, batch, records, reference):
        """Apply the stacking rule, append the rows in id order, move the tracking branch."""
        loop, head = self.loop, reference["commit"]
        rows = {}
        for c in batch:
            if c.runs:
                rows[c.id] = loop.candidate_row(c.id, c.commit, head, c.branch, c.asked, *c.outcome, c.pr, reference)
            else:
                rows[c.id] = invalid_row(c.id, head, *c.asked, config=loop.config, key=loop.key)
                if c.asked[0].get("reapplied_from") is not None:
                    rows[c.id]["reapplied_from"] = c.asked[0]["reapplied_from"]
        kept = [r for r in rows.values() if r["status"] == KEEP]
        if kept:
            direction = loop.config.direction
            best = max(kept, key=lambda r: (improvement(r["metric"], reference["metric"], direction), -r["id"]))
            for row in kept:
                if row is not best:
                    asked = next(c.asked for c in batch if c.id == row["id"])
                    rows[row["id"]] = self._superseded(row, best, asked, head, records)
        for exp_id in sorted(rows):
            loop.ledger.append(rows[exp_id])
            loop.events("result", record=rows[exp_id], batch=True)  # results come after all the starts
        if kept:
            loop.git.move_branch(loop.tracking, best["commit"], head)
        self.unpublished += [(rows[c.id], reference) for c in batch if c.runs]
        return [rows[exp_id] for exp_id in sorted(rows)]

    def _superseded(self, row, best, asked, head, records):
        """The row of a keep that lost to `best` in its batch; its change is queued for the new head."""
        again = self.loop.source.reapply(asked, head, best["commit"], records)
        winner = f"{best['id']:04d} ({best['description']}) was better in the same batch and was kept"
        if isinstance(again, Asked):
            self.requeued.append((asked, head, row["id"]))
            what = "its change is re-applied on the new head and evaluated again in the next batch"
        else:
            what = f"its change is dropped: {again}"
        evidence = dict(row.get("evidence") or {}, superseded_by=best["id"], requeued=isinstance(again, Asked))
        return dict(row, status=DISCARD, evidence=evidence,
                    reason=f"would be kept ({row['reason']}), but {winner}; {what}")

    def publish(self, records=None):
        """GitHub writes of the decisions made so far, in id order (nothing in local mode)."""
        publisher, done, self.unpublished = self.loop.publisher, self.unpublished, []
        if not publisher or not done:
            return
        for record, reference in done:
            publisher.finish(record, reference)
        publisher.update_report(self.loop.ledger.read() if records is None else records)
