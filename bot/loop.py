"""The research loop: a baseline, then propose → validate → commit → run → decide → record.

Receives everything it touches (config, git, runner, proposer, ledger) and reports progress
through `events(kind, **facts)`, so the CLI, tests and benchmarks drive the same code.
Order of writes for one experiment: experiment commit and branch, run, ledger row, then the
tracking branch. A kill between the last two is finished on the next start (`_reconcile`).
"""

import dataclasses
import functools
import hashlib
import shutil
import time
from pathlib import Path

from bot import __version__, scratch
from bot.decide import CRASH, GATE_FAILED, KEEP
from bot.errors import BotError, ProposalError, RepoError
from bot.hints import crash_hint
from bot.init import dependencies
from bot.ledger import next_experiment_id
from bot.proposal import is_editable
from bot.proposing import ProposalSource
from bot.replicates import head_values, judge, measure, segment_sigma
from bot.report import spent_usd
from bot.reproduce import top_up_head
from bot.rows import (
    STATUS_INVALID,
    comparability_key,
    experiment_row,
    invalid_row,
    same_segment,
)
from bot.runcache import RunCache
from bot.runners import Experiment


class Interrupted(BotError):
    """Ctrl-C: the running experiment was stopped and nothing was recorded for it."""


class Streaks:
    """Experiments in a row that crashed, or whose proposals were all refused: a broken setup stops."""

    def __init__(self, limit):
        self.limit, self.crashes, self.invalid = limit, 0, 0

    def add(self, record):
        """The stop reason once `limit` such experiments came in a row, else None."""
        self.crashes = self.crashes + 1 if record["status"] == CRASH else 0
        self.invalid = self.invalid + 1 if record["status"] == STATUS_INVALID else 0
        if self.crashes >= self.limit:
            return (f"stopped after {self.crashes} consecutive crashes; the last, {record['id']:04d} "
                    f"({record['description']}): {record['reason']} — log: {record.get('log_path')}")
        if self.invalid >= self.limit:
            return (f"stopped after {self.invalid} experiments in a row whose proposals were all refused; the "
                    f"last: {record['reason']}. Check program.md and the proposer's settings")
        return None


class ResearchLoop:
    def __init__(self, config, git, runner, proposer, ledger, events=None, state_dir=None,
                 bot_version=__version__, clock=time.monotonic, publisher=None):
        self.config, self.git, self.runner = config, git, runner
        self.publisher = publisher  # GitHub mode (bot/github/publisher.py): PRs, labels, merges
        self.proposer, self.ledger = proposer, ledger
        self.events = events or (lambda kind, **facts: None)
        self.state_dir = Path(state_dir or ledger.directory)
        self.bot_version, self.clock = bot_version, clock
        self.tracking = config.branches["tracking"]
        self.exp_prefix = config.branches["experiment"]
        self._source = None
        self.runs = RunCache(self.state_dir / "unrecorded-runs.jsonl")  # finished runs survive a kill

    @property
    def source(self):
        """Where proposals come from (built for the current proposer; None without one)."""
        if self.proposer is None:
            return None
        if self._source is None or self._source.proposer is not self.proposer:
            self._source = ProposalSource(self.proposer, self.config, self.git, self.events, self.clock)
        return self._source

    # ---- set-up ---------------------------------------------------------------------------

    def preflight(self):
        """Check the repository before any compute; return the tracking head sha."""
        if not self.git.has_commits():
            files = ", ".join([*self.config.editable, *self.config.harness]) or "your files"
            raise RepoError(f"the repository has no commits: commit {files} first (`git add -A && git commit -m start`)")
        dirty = self.git.dirty_paths()
        if dirty:
            raise RepoError(
                f"uncommitted changes to {', '.join(dirty[:5])}: the bot runs what is committed; "
                "commit them (`git commit -am '...'`) or stash them (`git stash`), then rerun"
            )
        head = self.git.branch_sha(self.tracking)
        if head is None:
            head = self.git.resolve("HEAD")
            self.git.create_branch(self.tracking, head)
            self.events("tracking-created", branch=self.tracking, commit=head)
        else:
            head = self._follow_head_until_a_keep(head)
        files = self.git.list_files(head)
        missing = [p for p in self.config.editable if not any(is_editable(f, [p]) for f in files)]
        if missing:
            raise RepoError(
                f"{', '.join(missing)} not found on {self.tracking} ({head[:7]}): commit it, or set "
                "`editable:` in autoresearch.yaml to the files experiments may change"
            )
        absent = [p for p in self.config.harness if p not in set(files)]
        if absent:  # silently hashing fewer files would drop the run into trust mode
            raise RepoError(
                f"the harness file(s) {', '.join(absent)} are not on {self.tracking} ({head[:7]}): commit them, "
                "or list only existing files in `harness:` (`harness: []` runs in trust mode: the metric is "
                "whatever the run prints)"
            )
        return head

    def _follow_head_until_a_keep(self, head):
        """While the tracking branch holds no kept experiment it is only where the user's branch
        was: follow that branch when it moved (a baseline that crashed, fixed on main, is then
        measured again on the fix). Local mode only: in GitHub mode the branch is shared."""
        current = self.git.resolve("HEAD")
        if self.publisher is not None or current == head or self.git.current_branch() == self.tracking:
            return head
        if any(r.get("kind") == "experiment" and r.get("status") == KEEP for r in self.ledger.read()):
            return head
        self.git.move_branch(self.tracking, current, head)
        self.events("tracking-moved", branch=self.tracking, old=head, commit=current)
        return current

    def measure_under(self, head):
        """Set the frozen harness hashes at `head` and the comparability key runs get from now on."""
        self.harness = self._harness_hashes(head)
        self.key = comparability_key(self.config, self.harness, self.bot_version, self.runner.name,
                                     getattr(self.runner, "isolation", None))
        return self.key

    def _harness_hashes(self, head):
        """sha256 of each frozen file at the tracking head (the job checks them again)."""
        texts = {path: self.git.read_file(head, path) for path in self.config.harness}
        return {path: hashlib.sha256(text.encode("utf-8")).hexdigest()
                for path, text in texts.items() if text is not None}

    # ---- the loop -------------------------------------------------------------------------

    def start(self, ahead=1):
        """Everything before the first experiment: checks, key, an interrupted keep finished, the
        baseline measured (while `ahead` proposals are written) or the head topped up on resume.
        Returns (records, reference: the tracking head's record)."""
        for path in scratch.remove_stale():
            self.events("warning", message=f"removed {path}, left behind by a bot that was killed")
        head = self.preflight()
        self.measure_under(head)
        records = self.ledger.read()
        for warning in self.ledger.warnings:
            self.events("warning", message=warning)
        head = self._reconcile(records, head)
        reference = self._reference(records, head)
        if reference is None:
            if self.source:  # the first proposals are written while the baseline trains
                self.source.prefetch(head, records, self._baseline_id(records) + 1, None, count=ahead)
            reference = self._baseline(records, head)
            return self.ledger.read(), reference
        self.events("resume", reference=reference, experiments=len(records))
        if top_up_head(self, records, reference) is not None:
            records = self.ledger.read()
        return records, reference

    def run(self, iterations=None, hours=None):
        """Run experiments until `iterations` are done, `hours` pass, or a stop condition."""
        deadline = self.clock() + hours * 3600 if hours else None
        records, reference = self.start()
        done, streaks, stop = 0, Streaks(self.config.max_consecutive_crashes), None
        while stop is None:
            if iterations is not None and done >= iterations:
                stop = f"finished {done} experiment(s)"
                break
            if deadline is not None and self.clock() >= deadline:
                stop = f"the {hours:g} h limit passed after {done} experiment(s)"
                break
            stop = self.over_budget(records)
            if stop:
                break
            try:
                more = iterations is None or done + 1 < iterations  # else no next proposal is worth asking for
                record = self.experiment(records, reference, prefetch=more)
            except ProposalError as exc:
                stop = f"no more proposals: {exc}"
                break
            records.append(record)
            done += 1
            if record["status"] == KEEP:
                reference = record
            stop = streaks.add(record)
        if self.publisher is not None and hasattr(self.publisher, "flush"):
            self.publisher.flush()  # the last experiments' PRs, still being written in the background
        self.events("stop", reason=stop, experiments=done)
        return {"stop_reason": stop, "experiments": done, "best": reference}

    def _pr_number(self, exp_id):
        """A PR opened in the background while the experiment trained (None: not yet, or none)."""
        number = getattr(self.publisher, "pr_number", None)
        return number(exp_id) if number else None

    def over_budget(self, records, more=1):
        """The stop reason when `max_usd` is spent, or would be by `more` experiments like the last."""
        if self.config.max_usd is None:
            return None
        spent = spent_usd(records)
        costs = [spent_usd([r]) for r in records[-5:] if r.get("kind") == "experiment"]
        typical = sum(costs) / len(costs) if costs else 0.0
        if spent + typical * more > self.config.max_usd:
            return (f"max_usd reached: ${spent:.2f} spent on proposals and GPU time, about ${typical:.2f} more per "
                    f"experiment, limit ${self.config.max_usd:.2f} (raise `max_usd` to go on)")
        return None

    def segment(self, records):
        return [r for r in records if same_segment(r, self.key)]

    def _reference(self, records, head):
        """The record whose commit is the tracking head and was measured under this key."""
        kept = [r for r in self.segment(records) if r["status"] == KEEP]
        return kept[-1] if kept and kept[-1]["commit"] == head else None

    def _reconcile(self, records, head):
        """Finish a keep whose branch move was interrupted (ledger written, branch not moved)."""
        kept = [r for r in self.segment(records) if r["status"] == KEEP]
        if kept and kept[-1]["commit"] != head and kept[-1].get("parent") == head:
            self.git.move_branch(self.tracking, kept[-1]["commit"], head)
            self.events("reconciled", record=kept[-1])
            return kept[-1]["commit"]
        return head

    def _taken_ids(self):
        return [int(b.rsplit("/", 1)[1]) for b in self.git.branches(self.exp_prefix)
                if b.rsplit("/", 1)[1].isdigit()]

    def next_id(self, records):
        return next_experiment_id(records, self._taken_ids())

    def _baseline_id(self, records):
        return self.next_id(records) if records else 0

    def _baseline(self, records, head):
        exp_id = self._baseline_id(records)
        self.events("baseline-start", id=exp_id, commit=head, replicates=self.config.replicates)
        runs, result = measure(self.evaluate_seed, exp_id, head, self.config.seed, self.config.replicates)
        status = {"ok": KEEP, GATE_FAILED: GATE_FAILED}.get(result.status, CRASH)
        record = self.measured_row(exp_id, "baseline", head, None, "baseline", "the tracking head as it is",
                                    None, None, result, status, result.reason or "baseline",
                                    {"n": len(runs), "sigma": segment_sigma([{"replicates": runs}])}, runs=runs)
        self.ledger.append(record)
        self.events("result", record=record)
        if status == GATE_FAILED:
            raise BotError(
                f"the baseline failed its gate: {result.reason}\n{result.log_tail[-1500:]}\n"
                f"The gate must pass on {self.tracking} as it is: fix the code or the gate "
                f"(full log: {record['log_path']}) and rerun `bot run`."
            )
        if status == CRASH:
            # a missing package or GPU is not train.py's fault: say so, with the packages it declares
            hint = crash_hint(result.log_tail, dependencies(self.git.read_file(head, "pyproject.toml") or ""))
            raise BotError(
                f"the baseline crashed: {result.reason}\n{result.log_tail[-1500:]}\n"
                + (f"Cause: {hint} (full log: {record['log_path']})" if hint else
                   f"Fix train.py on {self.tracking} (full log: {record['log_path']}) and rerun `bot run`.")
            )
        return record

    def experiment(self, records, reference, prefetch=True):
        """Propose, validate, commit, run, decide and record one experiment; return its record."""
        exp_id = self.next_id(records)
        base = reference["commit"]
        device = (reference.get("key") or {}).get("device")
        asked = self.source.obtain(records, base, exp_id, device)
        if not hasattr(asked, "proposal"):
            return self.record_invalid(exp_id, base, asked)
        commit, branch = self.commit_proposal(exp_id, base, asked)
        pr = self.publisher.started(exp_id, branch, commit, base, asked.proposal.description,
                                    asked.proposal.rationale) if self.publisher else None
        # the next proposal is written while this one trains (the GPU never waits for the model)
        if prefetch:
            self.source.prefetch(base, records, exp_id + 1, device, running=(asked.proposal.description,))
        try:
            decision, runs, result = self.judge_commit(exp_id, commit, records, reference)
        except Interrupted:
            self.git.git("branch", "-D", branch)  # never measured: nothing to keep
            raise
        record = self.candidate_row(exp_id, commit, base, branch, asked, decision, runs, result, pr, reference)
        self.ledger.append(record)
        if record["status"] == KEEP:
            self.git.move_branch(self.tracking, commit, base)
        if self.publisher:
            self.publisher.decided(record, reference, [*records, record])
        self.events("result", record=record)
        return record

    # ---- the steps of one experiment (bot/parallel.py runs them for a batch) -------------

    def record_invalid(self, exp_id, base, refused):
        """Append the row of an experiment whose every proposal was refused (`refused`: spent, reasons)."""
        record = invalid_row(exp_id, base, *refused, config=self.config, key=self.key)
        self.ledger.append(record)
        self.events("result", record=record)
        return record

    def commit_proposal(self, exp_id, base, asked):
        """The experiment's commit on `base` and its branch; returns (commit, branch)."""
        proposal = asked.proposal
        message = f"{proposal.description}\n\n{proposal.rationale}\n\nautoresearch experiment {exp_id:04d}"
        commit = self.git.commit_files(base, proposal.files, message)
        branch = f"{self.exp_prefix}{exp_id:04d}"
        self.git.create_branch(branch, commit)
        self.events("experiment-start", id=exp_id, description=proposal.description, commit=commit,
                    proposal=asked.spent)
        return commit, branch

    def judge_commit(self, exp_id, commit, records, reference, watch=None):
        """Run `commit` until the decision rule decides against `reference`: (decision, runs, result)."""
        segment = self.segment(records)
        return judge(functools.partial(self.evaluate_seed, watch=watch), exp_id, commit, head_values(reference, segment), segment_sigma(segment), self.config)

    def candidate_row(self, exp_id, commit, base, branch, asked, decision, runs, result, pr, reference):
        """The ledger row of a judged experiment (a gain too large to trust held for a human)."""
        proposal = asked.proposal
        record = self.measured_row(exp_id, "experiment", commit, base, proposal.description,
                                   proposal.rationale, proposal.change, asked.digest, result,
                                   decision.status, decision.reason, decision.evidence, branch, runs=runs)
        record["pr"] = pr if pr is not None else self._pr_number(exp_id)
        record["proposal"] = asked.spent
        for key in ("repair_of", "reapplied_from"):
            if asked.spent.get(key) is not None:
                record[key] = asked.spent[key]
        return self.publisher.guard(record, reference) if self.publisher else record

    def remeasure(self, exp_id, commit, head):
        """Run `commit` once more under this repo's key (for `/autoresearch retry`); no decision."""
        self.measure_under(head)
        return self._evaluate(exp_id, commit), self.key

    # ---- one run --------------------------------------------------------------------------

    def evaluate_seed(self, exp_id, commit, seed, replicate, watch=None):
        tree = self.git.git("rev-parse", f"{commit}^{{tree}}")
        earlier = self.runs.take(tree, self.key, replicate)
        if earlier is not None:  # finished before a kill: the same files, under the same key
            self.events("run-reused", id=exp_id, replicate=replicate, seed=earlier[0])
            return dataclasses.replace(earlier[1], seed=earlier[0])
        if replicate:
            self.events("replicate-start", id=exp_id, replicate=replicate, seed=seed)
        result = self._evaluate(exp_id, commit, seed, f"{exp_id:04d}-r{replicate}" if replicate else None, watch)
        self.runs.put(tree, self.key, replicate, seed, result)
        return result

    def _evaluate(self, exp_id, commit, seed=None, log_name=None, watch=None):
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        work = scratch.make(exp_id)
        try:
            source = self.git.export_tree(commit, work / "src")
            experiment = Experiment(
                id=exp_id, commit=commit, source_dir=str(source), work_dir=str(work),
                command=self.config.command, metric=self.config.metric,
                budget_seconds=float(self.config.budget_seconds),
                timeout_seconds=self.config.effective_timeout,
                seed=int(self.config.seed if seed is None else seed),
                data=self.config.data, expected_harness=self.harness,
                log_path=str(logs / f"{log_name or f'{exp_id:04d}'}.log"), metric_regex=self.config.metric_regex,
                gate=self.config.gate, gate_timeout_seconds=float(self.config.gate_timeout_seconds),
                isolation=self._isolation(), startup_seconds=self.config.startup_seconds,
                budget_steps=self.config.budget_steps, readable=tuple(self.config.readable),
                memory_preflight=bool(self.config.memory_preflight))
            handle = self.runner.submit(experiment)
            if watch:  # parallel batches: the main thread cancels every watched run on Ctrl-C
                watch(handle)
            try:
                result = None
                while result is None:
                    result = handle.result(timeout=0.5)
            except KeyboardInterrupt:
                handle.cancel()
                raise Interrupted(f"experiment {exp_id:04d} was stopped and not recorded") from None
            return result
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _isolation(self):
        """What the runner decided (sandbox → required for every run; none), else the setting."""
        decided = getattr(self.runner, "isolation", None)
        return {"bwrap": "sandbox", "none": "none"}.get(decided, self.config.isolation)

    def measured_row(self, exp_id, kind, commit, parent, description, rationale, change, digest,
             result, status, reason, evidence, branch=None, runs=None):
        self.runs.clear(self.git.git("rev-parse", f"{commit}^{{tree}}"))  # its row is written next
        return experiment_row(exp_id, kind, commit, parent, description, rationale, change, digest, result,
                              status, reason, evidence, branch, runs, config=self.config, key=self.key,
                              runner=self.runner.name, logs=self.state_dir / "logs")
