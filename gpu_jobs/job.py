"""Run one experiment from a directory of source files and collect its result. Shared by the local
runner and the GPU service: stdlib plus `bot.summary`/`bot.metric` only.

With a harness (`val_bpb` measured by prepare.py) an experiment is two phases:
  train  (untrusted)  the command runs in a sandbox (gpu_jobs/sandbox.py) that holds the training
                      split only, and is stopped at budget + start-up allowance, measured here. Its
                      last act is to hand the model over as a graph file in its scratch directory.
  eval   (trusted)    a fresh process of the verified harness copy, started beforehand so that its
                      imports overlap the training, scores the graph on the validation split in its
                      own sandbox and writes the result where the experiment never had access.
Without a harness (trust mode, or another metric) the command's output is the measurement: a
summary key or a regex. A `gate` command runs first, in the same sandbox, under its own timeout.

Whatever the experiment prints is redacted of every secret value the bot holds, cut to length,
and only the known summary keys (and other numeric ones) are kept.
"""

import dataclasses
import hashlib
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

from bot.metric import regex_value
from bot.summary import metric_value
from gpu_jobs.phases import run_two_phases
from gpu_jobs.steps import Runner, command_argv, harness_mode, run_gate, run_outcome

__all__ = ["JobSpec", "run_job", "harness_mismatches", "command_argv"]


@dataclasses.dataclass
class JobSpec:
    source_dir: str  # the commit's files; used as the experiment's scratch directory
    command: str = "python train.py"
    budget_seconds: float = 300.0
    timeout_seconds: float = 600.0  # without a harness: the command's limit
    seed: int = 42
    data: str = "auto"
    metric: str = "val_bpb"
    expected_harness: dict = dataclasses.field(default_factory=dict)  # path -> sha256
    log_path: str = ""
    metric_regex: str = ""  # empty: read `metric` from the summary block
    gate: str = ""  # empty: no gate
    gate_timeout_seconds: float = 300.0
    work_dir: str = ""  # private to the job (harness copy, data, graph, result); empty: a temporary one
    isolation: str = "auto"  # auto (sandbox when it can start) | sandbox (required) | none
    startup_seconds: float = None  # with a harness: the train phase stops at budget + this; None: auto
    # Counted training steps instead of budget_seconds: steps take what they take on a loaded
    # machine, so the train phase is then limited by timeout_seconds only (train.py counts them).
    budget_steps: int = None
    evaluator: str = "prepare.py"  # the harness file that materializes the data and evaluates
    readable: tuple = ()  # without a harness: extra read-only paths (`~` = this machine's home), e.g. a fork's data
    secrets: tuple = None  # values to redact; None: derived from the environment
    # Memory preflight (gpu_jobs/preflight.py): estimate the GPU profile's peak memory on fake CPU
    # tensors first and refuse a run that would not fit `gpu` (a Modal GPU name; empty: this
    # machine's GPU, when it has one).
    memory_preflight: bool = False
    gpu: str = ""


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def harness_mismatches(source_dir, expected):
    problems = []
    for path, sha in sorted(expected.items()):
        full = Path(source_dir) / path
        if not full.is_file() or full.is_symlink():
            problems.append(f"{path} is missing")
        elif (actual := file_sha256(full)) != sha:
            problems.append(f"{path} differs from the frozen harness (sha256 {actual[:12]} != {sha[:12]})")
    return problems


def run_job(spec, on_line=None, cancel_event=None, environ=None):
    """Run the experiment; return a JSON-ready dict (see `RunResult` on the bot side)."""
    started = time.monotonic()
    result = {"status": "crash", "exit_code": None, "reason": "", "summary": None, "metric": None,
              "metric_source": None, "harness_result": None, "flags": [], "log_tail": "",
              "timings": {}, "peak_memory_mb": 0.0, "device": None, "isolation": None}
    problems = harness_mismatches(spec.source_dir, spec.expected_harness)
    if problems:
        result["reason"] = "harness check failed: " + "; ".join(problems)
        result["timings"] = {"total_s": round(time.monotonic() - started, 3)}
        return result
    environ = dict(os.environ if environ is None else environ)
    own_work = not spec.work_dir
    work = Path(spec.work_dir or tempfile.mkdtemp(prefix="autoresearch-job-"))
    log = open(spec.log_path, "w", encoding="utf-8") if spec.log_path else None
    try:
        runner = Runner(spec, environ, on_line, log, cancel_event)
        result["isolation"] = runner.isolation
        if runner.note:
            result["flags"].append(runner.note)
        if spec.isolation == "sandbox" and runner.isolation != "bwrap":
            result["reason"] = f"isolation: sandbox is required but {runner.note}"
        elif harness_mode(spec):
            run_two_phases(spec, runner, work, result)
        else:
            _run_command(spec, runner, result)
    finally:
        if log:
            log.close()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    result["timings"]["total_s"] = round(time.monotonic() - started, 3)
    return result


def extra_readable(spec, home):
    """The configured read-only paths that exist here, `~` expanded to `home`."""
    paths = [os.path.join(home, p[2:]) if p.startswith("~/") else (home if p == "~" else p) for p in spec.readable]
    return [p for p in paths if os.path.exists(p)]


def _run_command(spec, runner, result):
    """No harness: the command's own output is the measurement."""
    if not run_gate(spec, runner, runner.env, result):
        return
    changed = harness_mismatches(spec.source_dir, spec.expected_harness)
    if changed:  # the gate ran candidate code in the same directory: the scorer must still be the frozen one
        result["reason"] = "the gate changed the frozen harness: " + "; ".join(changed)
        return
    run = runner.run(command_argv(spec.command), cwd=spec.source_dir, writable=spec.source_dir,
                     readable=extra_readable(spec, runner.home), timeout=spec.timeout_seconds, env=dict(runner.env, AUTORESEARCH_PHASE="run"),
                     label=f"run: {spec.command}" if spec.gate else None, name=spec.command)
    result["timings"]["train_s"] = run["seconds"]
    if not run_outcome(spec, run, result, f"no result within the {spec.timeout_seconds:g} s timeout; "
                                          "the process was killed"):
        return
    summary, output = result["summary"], "\n".join(run["tail"])
    if spec.metric_regex:
        value, result["metric_source"] = regex_value(output, spec.metric_regex), "regex"
        if value is None:
            result["reason"] = f"no output line matched the metric regex {spec.metric_regex!r} with a number"
            return
    else:
        value, result["metric_source"] = metric_value(summary, spec.metric), "printed"
        if value is None:
            result["reason"] = ("the run printed no `---` summary block" if summary is None
                                else f"the summary block has no numeric `{spec.metric}`")
            return
        if spec.metric == "val_bpb":
            result["flags"].append("trust mode: no harness result, the printed value was used")
    if not math.isfinite(value):
        result["reason"] = f"{spec.metric} is {value}"
        return
    result["status"], result["metric"] = "ok", value
