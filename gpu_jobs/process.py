"""One supervised process of an experiment: output read line by line (redacted, capped, logged),
a hard time limit, cancellation, a cap on the disk its writable directory may use, and every
process it started killed when it ends. Stdlib only."""

import collections
import os
import signal
import subprocess
import sys
import threading
import time

TAIL_LINES = 400
MAX_LINE_CHARS = 2000  # longer lines are cut: a single print must not fill a PR body
MAX_LOG_BYTES = 20 * 1024**2  # the log file stops growing here (the output is still read and counted)
MAX_SCRATCH_BYTES = 20 * 1024**3  # an experiment writing more into its directory is stopped
REDACTED = "[redacted]"


def redactor(secrets):
    """A function that replaces every secret value in a text (longest first) with [redacted]."""
    values = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(text):
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    return redact


def directory_bytes(path, stop_at=None):
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
            if stop_at and total > stop_at:
                return total
    return total


# Started in front of every command: asks the kernel to SIGKILL it when the bot dies (however it
# dies: kill -9 included), then becomes the command. Without it an unsandboxed train.py outlives a
# killed bot (the sandbox has bwrap's --die-with-parent). A shim, not preexec_fn: the bot has threads.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(137)  # the parent died before the request took hold\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def dies_with_parent(argv):
    """`argv` wrapped so that the kernel kills it when this process dies (Linux; as is elsewhere)."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class Supervised:
    """A started process in its own process group, its output read by a thread."""

    def __init__(self, argv, *, cwd, env, on_line=None, log=None, label=None, redact=None, stdin_pipe=False):
        self.started = time.monotonic()
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self.first_step = self.last_step = self.ready = None  # when those lines were read (the job's clock)
        self.lines = self.dropped_log_bytes = 0
        self.redact = redact or (lambda text: text)
        self.on_line, self.log = on_line, log
        if log and label:
            log.write(f"== {label} ==\n")
            log.flush()
        self.process = subprocess.Popen(
            dies_with_parent(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL, text=True, errors="replace",
            bufsize=1, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if len(line) > MAX_LINE_CHARS:
                line = line[:MAX_LINE_CHARS] + f" ...[{len(line) - MAX_LINE_CHARS} characters cut]"
            # "<!--" would open a hidden marker in a PR body that quotes this line
            line = self.redact(line).replace("<!--", "<! --")
            self.lines += 1
            self.tail.append(line)
            if self.log:
                if self.log.tell() < MAX_LOG_BYTES:
                    self.log.write(line + "\n")
                    self.log.flush()
                else:
                    self.dropped_log_bytes += len(line) + 1
            if line.startswith("step"):  # a training step ended: start-up before the first, hand-over after the last
                self.last_step = time.monotonic()
                self.first_step = self.first_step or self.last_step
            elif self.ready is None and line == "ready":  # the evaluation has loaded and waits
                self.ready = time.monotonic()
            if self.on_line:
                self.on_line(line)

    def send(self, text):
        try:
            self.process.stdin.write(text)
            self.process.stdin.flush()
            self.process.stdin.close()
        except (OSError, ValueError):
            pass

    def wait(self, timeout, cancel_event=None, watch_dir=None):
        """Wait until exit, timeout, cancellation or a full scratch directory; then kill the group."""
        outcome = {"returncode": None, "timed_out": False, "cancelled": False, "disk_full": False, "error": ""}
        begun = time.monotonic()  # a process started ahead (the evaluation) is timed from here
        deadline, next_check = begun + timeout, begun + 1.0
        try:
            while self.process.poll() is None:
                if cancel_event is not None and cancel_event.is_set():
                    outcome["cancelled"] = True
                    break
                if time.monotonic() > deadline:
                    outcome["timed_out"] = True
                    break
                if watch_dir and time.monotonic() > next_check:
                    next_check = time.monotonic() + 2.0
                    if directory_bytes(watch_dir, MAX_SCRATCH_BYTES) > MAX_SCRATCH_BYTES:
                        outcome["disk_full"] = True
                        break
                time.sleep(0.05)
        finally:
            # Also after a normal exit: whatever the command left running in its group (data
            # workers, a stray server) must not hold the GPU into the next experiment.
            self.kill()
        outcome["returncode"] = self.process.returncode
        return self._finish(outcome, begun)

    def kill(self):
        """SIGTERM the process group, then SIGKILL what is still there after a grace period."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                if self.process.poll() is not None and not _group_alive(self.process.pid):
                    break
                time.sleep(0.02)
            else:
                continue
            break
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            pass

    def _finish(self, outcome, begun):
        self.reader.join(timeout=5)
        if self.log and self.dropped_log_bytes:
            self.log.write(f"[log capped at {MAX_LOG_BYTES} bytes: {self.dropped_log_bytes} more bytes of output "
                           "were read and dropped]\n")
            self.log.flush()
        outcome.update(tail=list(self.tail), first_step=self.first_step, last_step=self.last_step, ready=self.ready,
                       started=self.started, seconds=round(time.monotonic() - begun, 3), lines=self.lines)
        return outcome


def failed_outcome(error):
    """The outcome of a command that never started (`error` says why)."""
    return {"returncode": None, "timed_out": False, "cancelled": False, "disk_full": False, "error": error,
            "tail": [], "first_step": None, "last_step": None, "ready": None, "started": time.monotonic(),
            "seconds": 0.0, "lines": 0}


def run_process(argv, *, cwd, env, timeout, cancel_event=None, on_line=None, log=None, label=None, redact=None,
                watch_dir=None):
    """Run one command to the end (see `Supervised.wait`); a command that cannot start is an outcome too."""
    try:
        supervised = Supervised(argv, cwd=cwd, env=env, on_line=on_line, log=log, label=label, redact=redact)
    except (OSError, ValueError) as exc:
        return failed_outcome(str(exc))
    return supervised.wait(timeout, cancel_event, watch_dir)
