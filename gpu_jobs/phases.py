"""The two phases of an experiment with a harness: untrusted training, trusted evaluation.

Layout of the job's private directory (never mounted into the train phase):
    harness/   the verified bytes of the harness files: the eval phase runs prepare.py from here
    data/      train.bin (the one data file the train phase sees, with meta.json), val.bin, meta.json, and
               for a BPE source token_bytes.bin and tokenizer.json
    graph/     the handed-over model, copied out of the scratch directory without following links
    out/       the eval phase's result.json: the metric's only channel
"""

import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from gpu_jobs import preflight
from gpu_jobs.steps import (HANDOFF, MAX_GRAPH_BYTES, PRINTED_TOLERANCE, command_argv, eval_timeout, has_gpu,
                            read_json, run_gate, run_outcome, startup_allowance, take_handoff)


def _copy_harness(spec, harness_dir):
    for relative in spec.expected_harness:
        target = harness_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(spec.source_dir) / relative, target)  # checked against its hash just before


def _hide_in_scratch(scratch, hidden):
    """Delete validation files that sit inside the scratch copy (a text source in the repository);
    return the others, for the sandbox to mask."""
    outside = []
    root = os.path.realpath(scratch)
    for path in hidden:
        real = os.path.realpath(path)
        if real == root or real.startswith(root + os.sep):
            if os.path.isdir(real):
                shutil.rmtree(real, ignore_errors=True)
            elif os.path.lexists(real):
                os.remove(real)
        else:
            outside.append(path)
    return outside


def _split_key(spec, runner):
    """Where the splits of this harness and data source are cached (None: not cached; a text source
    lives in the repository and may change with any commit)."""
    data = spec.data if spec.data != "auto" else ("parquet" if has_gpu() else "stdlib")
    if data.startswith("text:"):
        return None
    key = json.dumps([spec.expected_harness[spec.evaluator], data, sys.version, sys.prefix])
    return Path(runner.cache_dir) / "splits" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _prepare_data(spec, runner, dirs, evaluator, result):
    """The verified harness writes the splits (trusted code: it runs outside the sandbox, and a
    parquet source downloads once); they are cached outside any experiment's reach."""
    cached = _split_key(spec, runner)
    if cached is None or not (cached / "meta.json").exists():
        target = dirs["data"] if cached is None else Path(f"{cached}.tmp{os.getpid()}")
        prepare_env = dict(runner.env, HOME=runner.home, AUTORESEARCH_CACHE_DIR=runner.cache_dir)
        prepared = runner.run([*evaluator, "materialize", str(target)], cwd=spec.source_dir, writable=str(target),
                              timeout=max(600.0, spec.timeout_seconds), env=prepare_env, label="data",
                              name=f"python {spec.evaluator} materialize", trusted=True)
        result["timings"]["prepare_s"] = prepared["seconds"]
        if prepared["returncode"] != 0 or read_json(target / "meta.json") is None:
            last = next((line for line in reversed(prepared["tail"]) if line.strip()), prepared["error"] or "no output")
            result["reason"] = (f"the harness could not prepare the data (`python {spec.evaluator} materialize`): "
                                f"{last[:300]}")
            result["log_tail"] = "\n".join(prepared["tail"][-40:])
            return None
        if cached is not None and not cached.exists():
            os.replace(target, cached)
        elif cached is not None:  # another job cached the same splits meanwhile
            shutil.rmtree(target, ignore_errors=True)
    if cached is not None:
        # the splits, meta.json, and what the harness wrote beside them (a BPE source: token_bytes.bin, tokenizer.json)
        for name in sorted(p.name for p in cached.iterdir() if p.is_file() and not p.is_symlink()):
            try:
                os.link(cached / name, dirs["data"] / name)
            except OSError:
                shutil.copyfile(cached / name, dirs["data"] / name)
    return read_json(dirs["data"] / "meta.json")


def run_two_phases(spec, runner, work, result):
    work = Path(work)
    dirs = {name: work / name for name in ("harness", "data", "graph", "out")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    _copy_harness(spec, dirs["harness"])
    evaluator = str(dirs["harness"] / spec.evaluator)
    python = [sys.executable, "-I", "-B"]
    meta = _prepare_data(spec, runner, dirs, [*python, evaluator], result)
    if meta is None:
        return
    hidden = _hide_in_scratch(spec.source_dir, meta.get("hide") or [])
    if preflight.wanted(spec) and not preflight.check_memory(spec, runner, result, meta.get("train_bytes"), hidden):
        return  # refused before any GPU time
    train_env = dict(runner.env, AUTORESEARCH_PHASE="run", AUTORESEARCH_TRAIN_DATA=str(dirs["data"] / "train.bin"),
                     AUTORESEARCH_HANDOFF=str(Path(spec.source_dir) / HANDOFF))
    train_env.pop("AUTORESEARCH_DATA", None)
    if not run_gate(spec, runner, train_env, result):
        return

    # Eval starts now and waits: importing torch and reading val overlaps the training.
    graph = dirs["graph"] / "model.graph"
    evaluation = runner.start(
        [*python, evaluator, "evaluate-when-ready", str(graph), str(dirs["data"]), str(dirs["out"] / "result.json"),
         str(MAX_GRAPH_BYTES)],
        cwd=str(dirs["out"]), writable=str(dirs["out"]),
        readable=[str(dirs["harness"]), str(dirs["data"]), str(dirs["graph"])],
        # Idle OpenMP threads sleep instead of spinning: on a small shared CPU machine spinning
        # threads thrash (measured on 2 busy cores: 16 calls in 3.9-5.2 s spinning, 1.5-1.7 s passive).
        env=dict(runner.env, OMP_WAIT_POLICY="PASSIVE"),
        label=None, stdin_pipe=True)
    try:
        (Path(spec.source_dir) / HANDOFF).parent.mkdir(parents=True, exist_ok=True)
        # a step budget takes what it takes: then only the run's timeout bounds it
        limit = (float(spec.timeout_seconds) if spec.budget_steps
                 else float(spec.budget_seconds) + startup_allowance(spec))
        run = runner.run(command_argv(spec.command), cwd=spec.source_dir, writable=spec.source_dir, timeout=limit,
                         readable=[str(dirs["data"] / "train.bin"), str(dirs["data"] / "meta.json")],
                         hidden=hidden, env=train_env, label=f"run: {spec.command}" if spec.gate else None,
                         name=spec.command)
        result["timings"]["train_s"] = run["seconds"]
        reason = (f"the train phase ran past its budget plus start-up allowance ({spec.budget_seconds:g} s + "
                  f"{startup_allowance(spec):g} s, measured by the job) and was stopped; training time is the "
                  "budget, whatever train.py prints") if not spec.budget_steps else (
                  f"the train phase of a {spec.budget_steps}-step budget ran past the {spec.timeout_seconds:g} s "
                  "timeout and was stopped")
        if not run_outcome(spec, run, result, reason):
            return
        problem = take_handoff(Path(spec.source_dir) / HANDOFF, graph)
        if problem:
            result["reason"] = problem
            return
        _handover_timings(result["timings"], run, evaluation)
        evaluation.send("go\n")
        scored = evaluation.wait(eval_timeout(spec))
    finally:
        evaluation.send("stop\n")
        evaluation.kill()
    _collect(spec, result, scored, read_json(dirs["out"] / "result.json"), run)


def _handover_timings(timings, run, evaluation):
    """From the last training step (its line, read here) to the graph in the job's hands: tracing,
    writing it, the summary, the process's exit. And how long the waiting evaluation took to load,
    which the training hid."""
    if run.get("last_step") is not None:
        timings["handover_s"] = round(time.monotonic() - run["last_step"], 3)
    if evaluation.ready is not None:
        timings["eval_startup_s"] = round(evaluation.ready - evaluation.started, 3)


def _collect(spec, result, scored, measured, run):
    timings = result["timings"]
    timings["eval_s"] = round(scored["seconds"], 3)
    if measured:
        timings["eval_load_s"] = measured.get("load_seconds")
    if scored["timed_out"]:
        result["status"] = "timeout"
        result["reason"] = f"the evaluation did not finish within {eval_timeout(spec):g} s"
        return
    if measured is None:
        last = next((line for line in reversed(scored["tail"]) if line.strip()), "no output")
        result["reason"] = f"the harness could not evaluate the handed-over model: {last[:300]}"
        result["log_tail"] = "\n".join([result["log_tail"], "== eval ==", *scored["tail"][-20:]]).strip()
        return
    result["harness_result"] = measured
    result["device"] = measured.get("device") or result["device"]
    if measured.get("refusal"):
        result["reason"] = measured["refusal"]
        return
    value = measured.get("val_bpb")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        result["reason"] = f"the harness measured val_bpb = {value!r}, not a finite number"
        return
    summary = result["summary"] or {}
    printed = summary.get("val_bpb")
    if isinstance(printed, (int, float)) and math.isfinite(printed) and abs(printed - value) > PRINTED_TOLERANCE:
        result["flags"].append(f"printed val_bpb {printed:.6f} disagrees with the harness's {value:.6f}")
    result["summary"] = dict(summary, val_bpb=value)  # what train.py printed is not the measurement
    result["status"], result["metric"], result["metric_source"] = "ok", float(value), "harness"
