"""GitHub mode's ledger: the local files, mirrored on the ledger branch with compare-and-swap pushes.

Every append is written locally first (durable), then committed on top of the ledger branch's
last known head and pushed without force: if another run pushed meanwhile, the push is
refused, the remote rows are merged in (union by experiment id) and the push is retried. A kill
between the local write and the push is healed on the next start by `pull`, which pushes the
rows the remote lacks. The next Actions run starts by pulling, so it resumes where this one
stopped.
"""

import json
import os
import socket
import tempfile
import time
from pathlib import Path

from bot.errors import BotError, LedgerError, RepoError
from bot.github.lease import (
    LEASE_FILE,
    conflict,
    new_lease,
    released,
    renewed,
    taken_over,
)
from bot.ledger import Ledger, format_record, parse_jsonl, render_tsv

PUSH_ATTEMPTS = 5


def merge_records(remote, local):
    """Remote rows in their order, then local rows the remote does not have."""
    seen = {r["id"] for r in remote}
    return list(remote) + [r for r in local if r["id"] not in seen]


class BranchLedger(Ledger):
    def __init__(self, directory, metric, git, branch, remote="origin", push_env=None):
        super().__init__(directory, metric)
        self.git, self.branch, self.remote = git, branch, remote
        self.push_env = push_env or {}
        self.head = None  # the ledger branch's head as last seen on the remote
        self.lease = None  # ours, while this run holds it: every push renews it
        self.clock = time.time  # wall clock: leases are compared across machines

    def _remote_head(self):
        out = self.git.git("ls-remote", self.remote, f"refs/heads/{self.branch}", env=self.push_env)
        return out.split()[0] if out.strip() else None

    def _fetch(self):
        self.head = self._remote_head()
        if self.head is None:
            return []
        self.git.git("fetch", "--quiet", self.remote, f"refs/heads/{self.branch}", env=self.push_env)
        text = self.git.read_file(self.head, "experiments.jsonl") or ""
        records, _ = parse_jsonl(text)
        return records

    def _write_local(self, records):
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.jsonl_path.with_suffix(".jsonl.tmp")
        temporary.write_text("".join(format_record(r) for r in records), encoding="utf-8")
        os.replace(temporary, self.jsonl_path)
        self.write_tsv()

    def pull(self):
        """Make the local files the union of remote and local rows; push what the remote lacks."""
        remote = self._fetch()
        local = self.read()
        merged = merge_records(remote, local)
        self._write_local(merged)
        if len(merged) > len(remote) or self.head is None and merged:
            self.push()
        return merged

    def append(self, record):
        super().append(record)
        self.push()

    def _commit(self, records, parent):
        files = {"experiments.jsonl": "".join(format_record(r) for r in records),
                 "results.tsv": render_tsv(records, self.metric)}
        if self.lease is not None:
            self.lease = renewed(self.lease, self.clock()) if not self.lease.get("released") else self.lease
            files[LEASE_FILE] = json.dumps(self.lease, indent=2, sort_keys=True) + "\n"
        elif parent and (kept := self.git.read_file(parent, LEASE_FILE)) is not None:
            files[LEASE_FILE] = kept  # rows from `bot command` leave a running night's lease alone
        with tempfile.TemporaryDirectory(prefix="autoresearch-ledger-") as scratch:
            env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
            for name, text in files.items():
                Path(scratch, name).write_text(text, encoding="utf-8")
                blob = self.git.git("hash-object", "-w", str(Path(scratch, name)))
                self.git.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=env)
            tree = self.git.git("write-tree", env=env)
        parents = ["-p", parent] if parent else []
        return self.git.git("commit-tree", tree, *parents, "-m", f"ledger: {len(records)} row(s)")

    def push(self):
        for _ in range(PUSH_ATTEMPTS):
            records = self.read()
            commit = self._commit(records, self.head)
            try:
                self.git.git("push", "--quiet", self.remote, f"{commit}:refs/heads/{self.branch}", env=self.push_env)
                self.head = commit
                return commit
            except RepoError as exc:
                _refuse_if_protected(exc, self.branch)
                # Lost the compare-and-swap: someone pushed rows; merge theirs with ours, retry.
                self._write_local(merge_records(self._fetch(), records))
                if self.lease is not None and not self.lease.get("released"):
                    problem = conflict(self.current_lease(), self.lease["owner"], self.clock())
                    if problem:  # ours expired and another run took it: this run must stop
                        self.lease = None
                        raise BotError(f"this run lost its lease: {problem}")
        raise LedgerError(f"could not push the ledger to {self.remote} {self.branch} after {PUSH_ATTEMPTS} "
                          "attempts (another run keeps pushing?); rerun: local rows are kept and pushed next time")

    # ---- the lease: one `bot run` per tag across machines (bot/github/lease.py) ----------------------

    def current_lease(self):
        if self.head is None:
            return None
        text = self.git.read_file(self.head, LEASE_FILE)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    @staticmethod
    def holder_gone(lease):
        """A lease taken on this machine by a process that no longer exists (killed: no release)."""
        if lease.get("host") != socket.gethostname() or not isinstance(lease.get("pid"), int):
            return False
        if lease["pid"] == os.getpid():  # an earlier run in this process (the local lock keeps them apart)
            return True
        try:
            os.kill(lease["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def claim(self, owner, holder, ttl):
        """Take the lease or raise BotError naming the run that holds it; returns a note when an
        expired lease was taken over. Compare-and-swap: a run that claimed first wins."""
        for _ in range(PUSH_ATTEMPTS):
            remote = self._fetch()
            current, now = self.current_lease(), self.clock()
            problem = conflict(current, owner, now, self.holder_gone)
            if problem:
                raise BotError(problem)
            note = taken_over(current, owner, now)
            self._write_local(merge_records(remote, self.read()))
            self.lease = new_lease(owner, holder, now, ttl, socket.gethostname(), os.getpid())
            commit = self._commit(self.read(), self.head)
            try:
                self.git.git("push", "--quiet", self.remote, f"{commit}:refs/heads/{self.branch}", env=self.push_env)
            except RepoError as exc:
                self.lease = None
                _refuse_if_protected(exc, self.branch)
                continue  # someone pushed meanwhile: look at the lease again
            self.head = commit
            return note
        raise LedgerError(f"could not claim the lease on {self.branch} after {PUSH_ATTEMPTS} attempts; rerun")

    def release(self):
        """Give the lease back (end of run, Ctrl-C, SIGTERM); a failure only leaves it to expire."""
        if self.lease is None:
            return
        self.lease = released(self.lease, self.clock())
        try:
            self.push()
        except BotError:
            pass
        finally:
            self.lease = None


def _refuse_if_protected(exc, branch):
    """A rule on the branch is not a lost race: retrying cannot help, so say which rule and the fix."""
    from bot.github.client import ProtectedError, protection_refusal

    refused = protection_refusal(str(exc), branch)
    if refused:
        raise ProtectedError(refused) from None
