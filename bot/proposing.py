"""Getting a valid proposal for the next experiment, without the GPU waiting for it.

Validation runs before any compute: a refused proposal goes back to the proposer with the
reason, up to `proposal_attempts` times, and then becomes an `invalid` ledger row. A slow
proposer (`prefetch = True`) is asked for the next experiment while the current one trains;
if the head moved meanwhile, its edit is re-applied on the new head, and asked again only
if it no longer applies. After a crash a proposer that `repairs` gets one chance to fix it.
"""

import dataclasses
import inspect
import threading
import time

from bot.errors import ProposalError
from bot.pricing import add_tokens
from bot.proposal import is_editable, validate
from bot.proposers.edits import rebase_files


@dataclasses.dataclass
class Asked:
    """A proposal that passed validation, and what getting it cost."""
    proposal: object
    digest: str
    spent: dict  # the record's `proposal` field: proposer, model, tokens, usd, attempts, warnings, wait_s


class Prefetch:
    """One proposal being asked for in the background (a daemon thread: Ctrl-C never waits for it)."""

    def __init__(self, ask, base, base_files, experiment_id, clock):
        self.base, self.base_files, self.experiment_id = base, base_files, experiment_id
        self.proposal, self.error, self.clock = None, None, clock
        self.done = threading.Event()
        threading.Thread(target=self._work, args=(ask,), daemon=True).start()

    def _work(self, ask):
        try:
            self.proposal = ask()
        except BaseException as exc:  # raised again, in the loop's thread, when taken
            self.error = exc
        finally:
            self.done.set()

    def take(self):
        """(proposal, seconds waited for it); raises what the proposer raised."""
        started = self.clock()
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.proposal, self.clock() - started


class ProposalSource:
    def __init__(self, proposer, config, git, events, clock=time.monotonic):
        self.proposer, self.config, self.git = proposer, config, git
        self.events, self.clock = events, clock
        self.pending = []  # Prefetches, taken first in first out
        self._files = {}  # commit -> editable files there (the last few)
        parameters = inspect.signature(proposer.propose).parameters if proposer else {}
        self._takes = (set(parameters) if not any(p.kind == p.VAR_KEYWORD for p in parameters.values())
                       else {"avoid", "base_commit", "feedback", "running", "repair"})

    def files_at(self, commit):
        """The editable files at `commit` (a commit never changes: read once, asked for twice when a
        prefetch and the next experiment build on the same head)."""
        if commit not in self._files:
            files = [f for f in self.git.list_files(commit) if is_editable(f, self.config.editable)]
            self._files = {commit: {path: self.git.read_file(commit, path) for path in files},
                           **{k: v for k, v in list(self._files.items())[-3:]}}
        return dict(self._files[commit])

    def _ask(self, base, base_files, records, experiment_id, device, **extra):
        # The contract's optional parts (base_commit, feedback, running, repair) go only to a
        # proposer that takes them: a simple one need only read files and history.
        extra["base_commit"] = base
        given = {k: v for k, v in extra.items() if k in self._takes}
        return self.proposer.propose(base_files, records, device=device, experiment_id=experiment_id, **given)

    def prefetch(self, base, records, experiment_id, device, running=(), count=1):
        """Start asking for experiments `experiment_id`... now, from what is known now: `count`
        questions at once (a batch's proposals wait for the slowest answer, not for the sum)."""
        if not getattr(self.proposer, "prefetch", False) or len(self.pending) >= count:
            return  # those still pending from an older head are moved onto the new one when taken
        base_files, history = self.files_at(base), list(records)
        for k in range(len(self.pending), count):
            self.pending.append(Prefetch(
                lambda n=experiment_id + k: self._ask(base, base_files, history, n, device, running=tuple(running)),
                base, base_files, experiment_id + k, self.clock))

    def _take(self, base, base_files):
        """The prefetched proposal, moved onto `base` if the head moved; None if it cannot be."""
        if not self.pending:
            return None, 0.0
        pending = self.pending.pop(0)
        proposal, waited = pending.take()
        self.events("proposal-wait", seconds=waited, prefetched=True)
        if pending.base == base or proposal.error:
            return proposal, waited
        files = rebase_files(pending.base_files, proposal.files, base_files)
        if files is None:
            self.events("proposal-stale", description=proposal.description)
            return None, waited
        meta = dict(proposal.meta or {}, rebased_from=pending.base)
        return dataclasses.replace(proposal, files=files, meta=meta), waited

    def repair_due(self, records, base):
        """The crashed experiment to repair next, or None. One repair per crash, never of a repair,
        only of a crash with a log (not a timeout), and only while the head is still its base."""
        if not getattr(self.proposer, "repairs", False):
            return None
        runs = [r for r in records if r.get("status") != "note"]
        last = runs[-1] if runs else None
        if not (last and last.get("kind") == "experiment" and last.get("status") == "crash"
                and last.get("run_status") == "crash" and last.get("log_tail") and last.get("commit")
                and last.get("parent") == base and last.get("repair_of") is None):
            return None
        return {"id": last["id"], "description": last.get("description") or "", "log_tail": last["log_tail"],
                "files": self.files_at(last["commit"])}

    def obtain(self, records, base, experiment_id, device, batch=()):
        """An Asked, or (spent, reasons) when `proposal_attempts` proposals in a row were refused.
        `batch`: the Asked already chosen for experiments running beside this one on the same
        head; a proposal equal to one of them is refused and asked again, told what they are.
        ProposalError from the proposer itself (nothing left to propose) propagates."""
        base_files = self.files_at(base)
        tried = {r.get("diff_hash") for r in records if r.get("parent") == base and r.get("diff_hash")}
        tried |= {a.digest for a in batch}
        running = tuple(a.proposal.description for a in batch)
        repair = None if batch else self.repair_due(records, base)  # one repair per crash, not one per slot
        proposal, waited = (None, 0.0) if repair else self._take(base, base_files)
        spent = {"proposer": getattr(self.proposer, "name", "?"), "tokens": {}, "usd": 0.0, "attempts": 0,
                 "warnings": [], "wait_s": round(waited, 2)}
        feedback, reasons = [], []
        avoid = {((a.proposal.change or {}).get("name"), (a.proposal.change or {}).get("new")) for a in batch}
        extra = {"running": running} if running else {}
        for attempt in range(max(1, int(self.config.proposal_attempts))):
            if proposal is None:
                started = self.clock()
                proposal = self._ask(base, base_files, records, experiment_id, device, avoid=avoid,
                                     feedback=tuple(feedback), repair=repair, **extra)
                spent["wait_s"] = round(spent["wait_s"] + self.clock() - started, 2)
            _add(spent, proposal.meta or {})
            try:
                digest = validate(proposal, base_files, self.config.editable, self.config.harness, tried,
                                  max_file_bytes=self.config.max_file_bytes,
                                  allowed_calls=tuple(self.config.allowed_calls))
                if repair:
                    spent["repair_of"] = repair["id"]
                return Asked(proposal, digest, spent)
            except ProposalError as exc:
                reasons.append(f"{proposal.description}: {exc}")
                self.events("proposal-refused", id=experiment_id, description=proposal.description, reason=str(exc))
                feedback.append((proposal, str(exc)))
                change = proposal.change or {}
                avoid.add((change.get("name"), change.get("new")))
                proposal = None
        return spent, reasons

    def reapply(self, asked, old_base, new_base, records, batch=()):
        """`asked`'s change moved from `old_base` onto `new_base` and validated there again: an
        Asked (the proposal is not asked for again), or the reason it cannot be."""
        base_files = self.files_at(new_base)
        files = rebase_files(self.files_at(old_base), asked.proposal.files, base_files)
        if files is None:
            return "it no longer applies on the new head (the winner changed the same lines)"
        proposal = dataclasses.replace(asked.proposal, files=files,
                                       meta=dict(asked.proposal.meta or {}, rebased_from=old_base))
        tried = {r.get("diff_hash") for r in records if r.get("parent") == new_base and r.get("diff_hash")}
        try:
            digest = validate(proposal, base_files, self.config.editable, self.config.harness,
                              tried | {a.digest for a in batch}, max_file_bytes=self.config.max_file_bytes,
                              allowed_calls=tuple(self.config.allowed_calls))
        except ProposalError as exc:
            return f"re-applied on the new head it is refused: {exc}"
        spent = {"proposer": asked.spent.get("proposer", "?"), "tokens": {}, "usd": 0.0, "attempts": 0,
                 "warnings": [], "wait_s": 0.0, "rebased_from": old_base}
        return Asked(proposal, digest, spent)


def _add(spent, meta):
    spent["attempts"] += 1
    spent["tokens"] = add_tokens(spent["tokens"], meta.get("tokens") or {})
    spent["usd"] = round(spent["usd"] + float(meta.get("usd") or 0.0), 6)
    for key in ("model", "rebased_from"):
        if meta.get(key):
            spent[key] = meta[key]
    if meta.get("proposer"):
        spent["proposer"] = meta["proposer"]
    spent["warnings"] += [w for w in meta.get("warnings") or () if w not in spent["warnings"]]
