"""The memory preflight: before any GPU time, run the candidate's train.py in its GPU profile on fake
CPU tensors (prepare.py, AUTORESEARCH_PREFLIGHT) and refuse a run whose estimated peak memory does
not fit the GPU (bot/gpu_memory.py holds the sizes and the margin).

train.py is hostile: the preflight runs its code, so it runs exactly as the train phase does, in the
sandbox (Runner) with the allowlisted environment (no secrets), no data mounted at all, and only its
scratch directory writable. The estimate is what that process wrote: a forged one can waste only
its own experiment's GPU time (a run that then fails out of memory) or refuse itself. It is a cost
guard, not a trust boundary, and the metric never comes from it. A preflight that fails or times
out decides nothing: the run goes on, flagged. Stdlib plus bot.gpu_memory.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

from bot.gpu_memory import verdict
from gpu_jobs.steps import LOG_TAIL_LINES, command_argv, has_gpu, harness_mode, read_json

ESTIMATE_FILE = ".autoresearch-preflight/estimate.json"  # in the scratch directory, its only writable place
PREFLIGHT_TIMEOUT = 300.0  # seconds; the shipped GPU profile takes ~10 s on a loaded 2-core CPU
MAX_ESTIMATE_BYTES = 1 << 20
MARKER = b"AUTORESEARCH_PREFLIGHT"  # a harness without the preflight mode would just train on the CPU


def wanted(spec):
    """Whether this job checks memory first: switched on, a harness that has the preflight mode, and a
    GPU profile to check (a named GPU type, or a GPU on this machine)."""
    if not getattr(spec, "memory_preflight", False) or not harness_mode(spec):
        return False
    if not (getattr(spec, "gpu", "") or has_gpu()):
        return False
    try:
        return MARKER in (Path(spec.source_dir) / spec.evaluator).read_bytes()
    except OSError:
        return False


def local_gpu_gib():
    """This machine's first GPU's total memory in GiB (nvidia-smi), or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
        return float(out.stdout.split()[0]) / 1024 if out.returncode == 0 and out.stdout.split() else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def check_memory(spec, runner, result, data_bytes=0, hidden=(), timeout=PREFLIGHT_TIMEOUT):
    """Run the preflight; return True when the run may go on. A refusal fills `result` as a crash
    whose reason names the estimate, the GPU's capacity and the fix; `result["preflight"]` holds the
    facts either way."""
    path = Path(spec.source_dir) / ESTIMATE_FILE
    shutil.rmtree(path.parent, ignore_errors=True)
    env = dict(runner.env, AUTORESEARCH_PHASE="preflight", AUTORESEARCH_PREFLIGHT=str(path),
               AUTORESEARCH_PREFLIGHT_DATA_BYTES=str(int(data_bytes or 0)))
    env.pop("AUTORESEARCH_BUDGET_STEPS", None)  # the harness sets its own small step budget
    began = time.monotonic()
    run = runner.run(command_argv(spec.command), cwd=spec.source_dir, writable=spec.source_dir, timeout=timeout,
                     hidden=hidden, env=env, label="preflight", name=f"{spec.command} (memory preflight)")
    seconds = round(time.monotonic() - began, 3)
    result["timings"]["preflight_s"] = seconds
    estimate = None
    if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) <= MAX_ESTIMATE_BYTES:
        estimate = read_json(path)
    shutil.rmtree(path.parent, ignore_errors=True)
    if run["cancelled"]:
        result["status"], result["reason"] = "cancelled", "stopped by the user"
        return False
    numbers = estimate and all(isinstance(estimate.get(k), (int, float)) and not isinstance(estimate.get(k), bool)
                               and estimate[k] >= 0 for k in ("train_peak_bytes", "handoff_peak_bytes"))
    if run["error"] or run["timed_out"] or run["returncode"] != 0 or not numbers:
        why = (run["error"] or ("timed out" if run["timed_out"] else "") or
               next((line for line in reversed(run["tail"]) if line.strip()), "no estimate written"))
        result["flags"].append(f"memory preflight inconclusive ({why[:200]}); the run went ahead unchecked")
        result["preflight"] = {"seconds": seconds, "verdict": "inconclusive"}
        return True
    total = None if getattr(spec, "gpu", "") else local_gpu_gib()
    fits, reason, facts = verdict(estimate, spec.gpu or "this machine's GPU", total)
    result["preflight"] = dict(facts, seconds=seconds, verdict="fits" if fits else "refused",
                               harness_seconds=estimate.get("seconds"), params=estimate.get("params"))
    if fits:
        return True
    result["status"], result["reason"] = "crash", reason
    result["flags"].append("refused by the memory preflight before any GPU time")
    result["log_tail"] = "\n".join(run["tail"][-LOG_TAIL_LINES:])
    return False
