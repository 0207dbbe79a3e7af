"""Finished runs not yet in the ledger, kept on disk so a killed bot loses no finished compute.

An experiment's row is written when its last confirmation run ends; a kill -9 before that used
to throw away the runs already done (minutes of GPU each). Each finished run is appended here
under the commit's tree and the comparability key; the row, once written, clears them. On the
next start the same tree under the same key (the baseline again, or the same change proposed
again on the same head) takes them back instead of training again, each with the seed it ran with.
"""

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path

from bot.runners import RunResult


def _key_digest(key):
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunCache:
    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()  # `--parallel` records runs from several threads

    def _entries(self):
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except ValueError:  # a line cut by the kill itself
                continue
        return entries

    def put(self, tree, key, replicate, seed, result):
        entry = {"tree": tree, "key": _key_digest(key), "replicate": int(replicate), "seed": int(seed),
                 "result": dataclasses.asdict(result)}
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, default=str) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def take(self, tree, key, replicate):
        """(seed, RunResult) of a finished run of this tree, key and replicate, or None."""
        digest = _key_digest(key)
        with self._lock:
            for entry in reversed(self._entries()):
                if (entry.get("tree"), entry.get("key"), entry.get("replicate")) == (tree, digest, int(replicate)):
                    values = dict(entry["result"], flags=tuple(entry["result"].get("flags") or ()))
                    fields = {f.name for f in dataclasses.fields(RunResult)}
                    return int(entry["seed"]), RunResult(**{k: v for k, v in values.items() if k in fields})
        return None

    def clear(self, tree):
        """Forget the runs of `tree`: its row is being written."""
        with self._lock:
            entries = self._entries()
            kept = [e for e in entries if e.get("tree") != tree]
            if len(kept) == len(entries):
                return
            if not kept:
                self.path.unlink(missing_ok=True)
                return
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text("".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8")
            os.replace(temporary, self.path)
