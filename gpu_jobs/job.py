"""Run one experiment from a directory of source files, under the time budget, and collect
its result. Shared by the local runner and the GPU service: stdlib plus `bot.summary` only.

The training command runs in its own process group with an environment from which every
credential has been removed, a hard timeout, and the harness's settings passed as
AUTORESEARCH_* variables. The recorded metric comes from the harness's result file when
there is one; the value train.py printed is only cross-checked against it. Other metrics
are a summary key or a regex over the output (`metric_regex`).

A `gate` command (a test suite) runs first, the same way, under its own timeout; when it
fails the command never runs and the result is `gate-failed`. The command's timeout starts
after the gate, so a slow test suite is not charged to the experiment.
"""

import collections
import dataclasses
import hashlib
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.metric import regex_value
from bot.summary import metric_value, parse_summary

_SECRET = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|CREDENTIALS?|PAT)(_|$)", re.IGNORECASE)
# Not named like secrets, but each hands the experiment the user's identity.
_CREDENTIAL_CHANNELS = {"SSH_AUTH_SOCK", "GIT_ASKPASS", "SSH_ASKPASS", "GPG_AGENT_INFO"}
LOG_TAIL_LINES = 40
PRINTED_TOLERANCE = 1e-4


@dataclasses.dataclass
class JobSpec:
    source_dir: str
    command: str = "python train.py"
    budget_seconds: float = 300.0
    timeout_seconds: float = 600.0
    seed: int = 42
    data: str = "auto"
    metric: str = "val_bpb"
    expected_harness: dict = dataclasses.field(default_factory=dict)  # path -> sha256
    result_path: str = ""
    log_path: str = ""
    metric_regex: str = ""  # empty: read `metric` from the summary block
    gate: str = ""  # empty: no gate
    gate_timeout_seconds: float = 300.0


def scrub_environment(environ):
    """A copy of `environ` without anything that looks like a credential."""
    return {name: value for name, value in environ.items()
            if not _SECRET.search(name) and name not in _CREDENTIAL_CHANNELS}


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def harness_mismatches(source_dir, expected):
    problems = []
    for path, sha in sorted(expected.items()):
        full = Path(source_dir) / path
        if not full.exists():
            problems.append(f"{path} is missing")
        elif file_sha256(full) != sha:
            problems.append(f"{path} differs from the frozen harness (sha256 {file_sha256(full)[:12]} != {sha[:12]})")
    return problems


def command_argv(command):
    argv = shlex.split(command)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the interpreter that has torch, not whatever is on PATH
    return argv


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _kill_group(process):
    """SIGTERM the process group, then SIGKILL what is still there after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if process.poll() is not None and not _group_alive(process.pid):
                break
            time.sleep(0.02)
        else:
            continue
        break
    try:
        process.wait(5.0)
    except subprocess.TimeoutExpired:
        pass


def run_job(spec, on_line=None, cancel_event=None, environ=None):
    """Run the experiment; return a JSON-ready dict (see `RunResult` on the bot side)."""
    started = time.monotonic()
    result = {"status": "crash", "exit_code": None, "reason": "", "summary": None, "metric": None,
              "metric_source": None, "harness_result": None, "flags": [], "log_tail": "",
              "timings": {}, "peak_memory_mb": 0.0, "device": None}
    problems = harness_mismatches(spec.source_dir, spec.expected_harness)
    if problems:
        result["reason"] = "harness check failed: " + "; ".join(problems)
        result["timings"] = {"total_s": round(time.monotonic() - started, 3)}
        return result

    env = scrub_environment(os.environ if environ is None else environ)
    env.update({
        "AUTORESEARCH_BUDGET_SECONDS": str(spec.budget_seconds),
        "AUTORESEARCH_SEED": str(spec.seed),
        "AUTORESEARCH_DATA": spec.data,
        "AUTORESEARCH_RESULT_PATH": spec.result_path,
        "PYTHONUNBUFFERED": "1",
    })
    if spec.result_path and os.path.exists(spec.result_path):
        os.remove(spec.result_path)
    log = open(spec.log_path, "w", encoding="utf-8") if spec.log_path else None
    try:
        if spec.gate:
            gate = _run_process(spec.gate, spec.source_dir, dict(env, AUTORESEARCH_PHASE="gate"),
                                spec.gate_timeout_seconds, cancel_event, on_line, log, "gate")
            result["timings"]["gate_s"] = gate["seconds"]
            if gate["error"] or gate["cancelled"] or gate["timed_out"] or gate["returncode"] != 0:
                _gate_failed(result, spec, gate)
                result["timings"]["total_s"] = round(time.monotonic() - started, 3)
                return result
        run = _run_process(spec.command, spec.source_dir, dict(env, AUTORESEARCH_PHASE="run"),
                           spec.timeout_seconds, cancel_event, on_line, log, "run" if spec.gate else None)
    finally:
        if log:
            log.close()
    result["timings"]["total_s"] = round(time.monotonic() - started, 3)
    if run["error"]:
        result["reason"] = run["error"]
        return result
    output = "\n".join(run["tail"])
    result["exit_code"] = run["returncode"]
    result["log_tail"] = "\n".join(run["tail"][-LOG_TAIL_LINES:])
    if run["first_step"] is not None:
        result["timings"]["startup_s"] = round(run["first_step"] - run["started"], 3)
    if run["cancelled"]:
        result["status"], result["reason"] = "cancelled", "stopped by the user"
        return result
    if run["timed_out"]:
        result["status"] = "timeout"
        result["reason"] = f"no result within the {spec.timeout_seconds:g} s timeout; the process was killed"
        return result
    _collect(result, spec, output)
    return result


def _gate_failed(result, spec, gate):
    result["exit_code"] = gate["returncode"]
    result["log_tail"] = "\n".join(gate["tail"][-LOG_TAIL_LINES:])
    if gate["cancelled"]:
        result["status"], result["reason"] = "cancelled", "stopped by the user"
        return
    result["status"] = "gate-failed"
    if gate["error"]:
        result["reason"] = f"the gate could not start: {gate['error']}"
    elif gate["timed_out"]:
        result["reason"] = (f"the gate `{spec.gate}` did not finish within its {spec.gate_timeout_seconds:g} s "
                            "timeout (gate_timeout_seconds); it was killed")
    else:
        last = next((l for l in reversed(gate["tail"]) if l.strip()), "no output")
        result["reason"] = f"the gate `{spec.gate}` failed with exit code {gate['returncode']}: {last[:300]}"


def _run_process(command, cwd, env, timeout, cancel_event, on_line, log, label):
    """Run one command in its own process group until it exits, times out or is cancelled.

    Output goes line by line to the log (under a `== label ==` header when labelled), to
    `on_line`, and into the returned tail.
    """
    started = time.monotonic()
    outcome = {"returncode": None, "timed_out": False, "cancelled": False, "error": "",
               "tail": [], "first_step": None, "started": started, "seconds": 0.0}
    tail = collections.deque(maxlen=400)
    if log and label:
        log.write(f"== {label}: {command} ==\n")
        log.flush()
    try:
        process = subprocess.Popen(
            command_argv(command), cwd=cwd, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace",
            bufsize=1, start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        outcome["error"] = f"could not start `{command}`: {exc}"
        return outcome

    def read_output():
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            if log:
                log.write(line + "\n")
                log.flush()
            if outcome["first_step"] is None and line.startswith("step"):
                outcome["first_step"] = time.monotonic()
            if on_line:
                on_line(line)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    deadline = started + timeout
    try:
        while process.poll() is None:
            if cancel_event is not None and cancel_event.is_set():
                outcome["cancelled"] = True
                break
            if time.monotonic() > deadline:
                outcome["timed_out"] = True
                break
            time.sleep(0.05)
    finally:
        # Also after a normal exit: whatever train.py left running in its group (data
        # workers, a stray server) must not hold the GPU into the next experiment.
        _kill_group(process)
        reader.join(timeout=5)
    outcome["returncode"] = process.returncode
    outcome["tail"] = list(tail)
    outcome["seconds"] = round(time.monotonic() - started, 3)
    return outcome


def _collect(result, spec, output):
    summary = parse_summary(output)
    harness = None
    if spec.result_path and os.path.exists(spec.result_path):
        try:
            harness = json.loads(Path(spec.result_path).read_text())
        except (OSError, json.JSONDecodeError):
            harness = None
        if not isinstance(harness, dict):
            result["reason"] = "the harness result file is not a JSON object: the measurement is unusable"
            return
    result["summary"], result["harness_result"] = summary, harness
    if summary:
        result["timings"]["training_s"] = summary.get("training_seconds")
        result["peak_memory_mb"] = float(summary.get("peak_vram_mb") or 0.0)
        result["device"] = summary.get("device")
    if harness:
        result["timings"]["eval_s"] = harness.get("eval_seconds")
        result["device"] = harness.get("device") or result["device"]
    if result["exit_code"] != 0:
        failure = next((l for l in reversed(output.splitlines()) if l.strip()), "no output")
        result["reason"] = f"exited with code {result['exit_code']}: {failure[:300]}"
        return
    if spec.metric_regex:
        printed = regex_value(output, spec.metric_regex)
    else:
        printed = metric_value(summary, spec.metric)
    measured_by_harness = spec.metric == "val_bpb" and (harness is not None or spec.expected_harness)
    if measured_by_harness:
        # With a frozen harness the number must come from it: a train.py that skips
        # evaluate_bpb and prints its own value is not trusted.
        if harness is None:
            result["reason"] = ("the harness wrote no result: train.py must end with "
                                "prepare.evaluate_bpb(...), which measures val_bpb")
            return
        if harness.get("causal") is False:
            result["reason"] = "the harness's causality probe failed: the model sees future tokens"
            return
        measured = harness.get("val_bpb")
        if isinstance(measured, bool) or not isinstance(measured, (int, float)) or not math.isfinite(measured):
            result["reason"] = f"the harness measured val_bpb = {measured!r}, not a finite number"
            return
        value, result["metric_source"] = float(measured), "harness"
        if printed is not None and abs(printed - value) > PRINTED_TOLERANCE:
            result["flags"].append(f"printed val_bpb {printed:.6f} disagrees with the harness's {value:.6f}")
    elif printed is not None:
        value, result["metric_source"] = printed, ("regex" if spec.metric_regex else "printed")
        if spec.metric == "val_bpb":
            result["flags"].append("trust mode: no harness result, the printed value was used")
    elif spec.metric_regex:
        result["reason"] = f"no output line matched the metric regex {spec.metric_regex!r} with a number"
        return
    elif summary is None:
        result["reason"] = "the run printed no `---` summary block"
        return
    else:
        result["reason"] = f"the summary block has no numeric `{spec.metric}`"
        return
    if not math.isfinite(value):
        result["reason"] = f"{spec.metric} is {value}"
        return
    result["status"], result["metric"] = "ok", value
