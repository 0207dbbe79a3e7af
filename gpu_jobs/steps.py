"""Building blocks of one experiment's run, shared by the plain run (gpu_jobs/job.py) and the two
phases with a harness (gpu_jobs/phases.py): the command runner with its environment policy and
redaction, the gate, reading a finished command, the summary filter, and taking the handed-over
model. Stdlib plus `bot.summary`.
"""

import json
import os
import shlex
import shutil
import stat
import sys
from pathlib import Path

from bot.summary import clean_summary, parse_summary
from gpu_jobs import sandbox
from gpu_jobs.process import Supervised, failed_outcome, redactor, run_process

LOG_TAIL_LINES = 40
PRINTED_TOLERANCE = 1e-4
HANDOFF = ".autoresearch-handoff/model.graph"  # in the scratch directory: the train phase's only writable place
MAX_GRAPH_BYTES = 16 * 1024**3


def command_argv(command):
    argv = shlex.split(command)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the interpreter that has torch, not whatever is on PATH
    return argv


def has_gpu():
    return os.path.exists("/dev/nvidiactl")


def startup_allowance(spec):
    """Seconds the train phase may run beyond the budget: start-up, the first (uncounted) steps,
    compiling them on a GPU, and handing the model over."""
    if spec.startup_seconds is not None:
        return float(spec.startup_seconds)
    return 150.0 if has_gpu() else 10.0 + 0.1 * float(spec.budget_seconds)


def eval_timeout(spec):
    return 60.0 + 0.5 * float(spec.budget_seconds)


def harness_mode(spec):
    return spec.metric == "val_bpb" and not spec.metric_regex and spec.evaluator in spec.expected_harness


class Runner:
    """Starts commands directly or in the sandbox, with one environment policy and one redactor."""

    def __init__(self, spec, environ, on_line, log, cancel_event):
        self.spec, self.on_line, self.log, self.cancel = spec, on_line, log, cancel_event
        self.redact = redactor(sandbox.secret_values(environ) if spec.secrets is None else spec.secrets)
        self.home = environ.get("HOME") or os.path.expanduser("~")
        self.isolation, self.note = "none", ""
        if spec.isolation != "none":
            ok, why = sandbox.probe()
            if ok:
                self.isolation = "bwrap"
            else:
                self.note = f"no sandbox: {why}"
        self.env = sandbox.allowed_environment(environ)
        if self.isolation == "none":
            self.env["HOME"] = self.home
        self.env.update({"AUTORESEARCH_BUDGET_SECONDS": str(spec.budget_seconds),
                         "AUTORESEARCH_SEED": str(spec.seed), "AUTORESEARCH_DATA": spec.data,
                         "PYTHONUNBUFFERED": "1"})
        if getattr(spec, "budget_steps", None):
            self.env["AUTORESEARCH_BUDGET_STEPS"] = str(int(spec.budget_steps))
        self.cache_dir = environ.get("AUTORESEARCH_CACHE_DIR") or os.path.join(self.home, ".cache", "autoresearch-bot")

    def _command(self, argv, cwd, writable, readable=(), hidden=(), env=None, trusted=False):
        """(argv, environment) to start: in the sandbox bwrap gets an empty environment and sets `env`
        inside; `trusted` commands (the verified harness preparing data) run outside it."""
        if self.isolation == "bwrap" and not trusted:
            return sandbox.sandbox_argv(argv, cwd=cwd, writable=writable, readable=readable, hidden=hidden,
                                        env=env, home=self.home), {}
        return argv, env or {}

    def start(self, argv, *, cwd, writable, readable=(), hidden=(), env=None, label=None, stdin_pipe=False):
        """Start a command that waits for input (the evaluation); its output goes to the log only."""
        full, full_env = self._command(argv, cwd, writable, readable, hidden, env)
        return Supervised(full, cwd=cwd, env=full_env, log=self.log, label=label, redact=self.redact,
                          stdin_pipe=stdin_pipe)

    def run(self, argv, *, cwd, writable, timeout, readable=(), hidden=(), env=None, label=None, name="",
            trusted=False):
        """Run a command to its end; `trusted` (the verified harness preparing data) runs outside the sandbox."""
        missing = _missing_program(argv, cwd, (env or {}).get("PATH"))
        if missing:
            outcome = failed_outcome(missing)
        else:
            full, full_env = self._command(argv, cwd, writable, readable, hidden, env, trusted)
            outcome = run_process(full, cwd=cwd, env=full_env, timeout=timeout, cancel_event=self.cancel,
                                  on_line=self.on_line, log=self.log, label=label, redact=self.redact,
                                  watch_dir=writable)
        if outcome["error"]:
            outcome["error"] = f"could not start `{name or ' '.join(argv)}`: {outcome['error']}"
        return outcome


def _missing_program(argv, cwd, path):
    """Why argv[0] cannot start, or '' (checked here: inside the sandbox it would be bwrap's error)."""
    if not argv:
        return "the command is empty"
    program = argv[0]
    if "/" in program:
        full = program if os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.isfile(full):
            return f"{program}: no such file"
        return "" if os.access(full, os.X_OK) else f"{program}: not executable"
    return "" if shutil.which(program, path=path or os.defpath) else f"{program}: not found on PATH"


def run_gate(spec, runner, env, result):
    """Run the gate if there is one; return False (and fill `result`) when it did not pass."""
    if not spec.gate:
        return True
    gate = runner.run(command_argv(spec.gate), cwd=spec.source_dir, writable=spec.source_dir,
                      timeout=spec.gate_timeout_seconds, env=dict(env, AUTORESEARCH_PHASE="gate"),
                      label=f"gate: {spec.gate}", name=spec.gate)
    result["timings"]["gate_s"] = gate["seconds"]
    if not (gate["error"] or gate["cancelled"] or gate["timed_out"] or gate["disk_full"] or gate["returncode"] != 0):
        return True
    result["exit_code"] = gate["returncode"]
    result["log_tail"] = "\n".join(gate["tail"][-LOG_TAIL_LINES:])
    if gate["cancelled"]:
        result["status"], result["reason"] = "cancelled", "stopped by the user"
        return False
    result["status"] = "gate-failed"
    if gate["error"]:
        result["reason"] = f"the gate could not start: {gate['error']}"
    elif gate["timed_out"]:
        result["reason"] = (f"the gate `{spec.gate}` did not finish within its {spec.gate_timeout_seconds:g} s "
                            "timeout (gate_timeout_seconds); it was killed")
    elif gate["disk_full"]:
        result["reason"] = f"the gate `{spec.gate}` wrote too much into its directory; it was stopped"
    else:
        last = next((line for line in reversed(gate["tail"]) if line.strip()), "no output")
        result["reason"] = f"the gate `{spec.gate}` failed with exit code {gate['returncode']}: {last[:300]}"
    return False


def run_outcome(spec, run, result, limit_reason):
    """Fill `result` from a finished command; return False when it did not end normally."""
    result["exit_code"] = run["returncode"]
    result["log_tail"] = "\n".join(run["tail"][-LOG_TAIL_LINES:])
    if run["first_step"] is not None:
        result["timings"]["startup_s"] = round(run["first_step"] - run["started"], 3)
    if run["error"]:
        result["reason"] = run["error"]
    elif run["cancelled"]:
        result["status"], result["reason"] = "cancelled", "stopped by the user"
    elif run["timed_out"]:
        result["status"], result["reason"] = "timeout", limit_reason
    elif run["disk_full"]:
        result["reason"] = "the experiment wrote more than its directory may hold; it was stopped"
    else:
        summary = clean_summary(parse_summary("\n".join(run["tail"])), spec.metric)
        result["summary"] = summary
        if summary:
            result["timings"]["training_s"] = summary.get("training_seconds")
            _split_compile(result["timings"], summary.get("compile_seconds"))
            result["peak_memory_mb"] = float(summary.get("peak_vram_mb") or 0.0)
            result["device"] = summary.get("device")
        if run["returncode"] == 0:
            return True
        failure = next((line for line in reversed(run["tail"]) if line.strip()), "no output")
        result["reason"] = f"exited with code {run['returncode']}: {failure[:300]}"
    return False


def _split_compile(timings, compiled):
    """startup_s is measured here up to the first step line, which a GPU prints after compiling: when
    train.py reports its compile time (`compile_seconds`), that part moves to compile_s."""
    startup = timings.get("startup_s")
    if isinstance(compiled, (int, float)) and not isinstance(compiled, bool) and 0 <= compiled:
        timings["compile_s"] = round(float(compiled), 3)
        if startup is not None:
            timings["startup_s"] = round(max(0.0, startup - compiled), 3)


def take_handoff(path, dest, max_bytes=MAX_GRAPH_BYTES):
    """Move the graph the experiment left (every process of it is dead by now) out of its reach,
    refusing anything but a plain file of sane size. A rename moves a link itself, never its
    target (it could point at the validation data or a secret). Returns an error or ''."""
    if not os.path.lexists(path):
        return ("train.py did not hand its model to the harness: it must end with "
                "prepare.evaluate_bpb(model, batch_size), which does")
    try:
        os.rename(path, dest)
    except OSError:  # another filesystem: copy, without following a link
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            return f"the handed-over model could not be opened safely ({exc.strerror}); it must be a plain file"
        with os.fdopen(fd, "rb") as source:
            if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                return "the handed-over model is not a plain file"
            if os.fstat(source.fileno()).st_size > max_bytes:
                return f"the handed-over model is more than {max_bytes} bytes"
            with open(dest, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    info = os.lstat(dest)
    if not stat.S_ISREG(info.st_mode):
        os.unlink(dest)
        return "the handed-over model is not a plain file"
    if info.st_size > max_bytes:
        os.unlink(dest)
        return f"the handed-over model is {info.st_size} bytes, more than {max_bytes}"
    return ""


def read_json(path):
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
