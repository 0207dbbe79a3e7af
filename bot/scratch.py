"""Scratch directories of experiments: each says which process made it, so one left behind by a
killed bot (kill -9 skips every cleanup) is removed by the next run on this machine."""

import os
import shutil
import socket
import tempfile
from pathlib import Path

PREFIX = "autoresearch-"
OWNER = "owner"


def make(exp_id):
    work = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{exp_id:04d}-"))
    (work / OWNER).write_text(f"{os.getpid()} {socket.gethostname()}\n")
    return work


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True


def remove_stale(root=None):
    """Remove the scratch directories whose owner (on this host) is gone; return their paths."""
    removed, host = [], socket.gethostname()
    for path in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}[0-9][0-9][0-9][0-9]-*"):
        try:
            pid, owner_host = (path / OWNER).read_text().split()
        except (OSError, ValueError):
            continue  # not ours, or still being made
        if owner_host == host and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed
