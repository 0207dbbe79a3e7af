"""One `bot run` per repository and tag on this machine.

An exclusive `flock` on `.autoresearch/<tag>/run.lock`, held for the life of the process: the
kernel releases it when the process ends however it ends (kill -9 included), so a lock is never
stale. The file says who holds it (pid, host, since), for the message the second run prints.
"""

import datetime
import fcntl
import json
import os
import socket

from bot.errors import BotError


class RunLock:
    def __init__(self, directory, tag):
        self.path = os.path.join(directory, "run.lock")
        self.tag = tag
        self.handle = None

    def acquire(self, command="bot run"):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                owner = json.loads(handle.read() or "{}")
            except ValueError:
                owner = {}
            handle.close()
            raise BotError(
                f"another {owner.get('command', 'bot run')} is using tag {self.tag} in this repository (pid "
                f"{owner.get('pid', '?')} on {owner.get('host', '?')}, since {owner.get('since', '?')}): a second "
                "would repeat its experiments. Wait for it or stop it, or use another --tag") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                 "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}))
        handle.flush()
        self.handle = handle
        return self

    def release(self):
        if self.handle is not None:
            self.handle.close()  # closing drops the flock
            self.handle = None
