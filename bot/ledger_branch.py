"""GitHub mode's ledger: the local files, mirrored on the ledger branch with compare-and-swap pushes.

Every append is written locally first (durable), then committed on top of the ledger branch's
last known head and pushed without force: if another run pushed meanwhile, the push is
refused, the remote rows are merged in (union by experiment id) and the push is retried. A kill
between the local write and the push is healed on the next start by `pull`, which pushes the
rows the remote lacks. The next Actions run starts by pulling, so it resumes where this one
stopped.
"""

import os
import tempfile
from pathlib import Path

from bot.errors import LedgerError, RepoError
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
            except RepoError:
                # Lost the compare-and-swap: someone pushed rows; merge theirs with ours, retry.
                self._write_local(merge_records(self._fetch(), records))
        raise LedgerError(f"could not push the ledger to {self.remote} {self.branch} after {PUSH_ATTEMPTS} "
                          "attempts (another run keeps pushing?); rerun: local rows are kept and pushed next time")
