"""One experiment of this repository's train.py on this machine's GPU, as the bot runs it, in a table.

The job is the real one (gpu_jobs.job.run_job: sandboxed train phase, the harness's eval phase on the
validation split), on the default GPU data (the climbmix parquet shards, BPE tokenizer) unless
`--data` says otherwise. Printed: the GPU, MFU (autoresearch's convention: 6 x matmul weights +
attention FLOPs per token, over the device's dense bf16 peak), tokens per second, steps in the
budget, val_bpb (measured by the harness), peak VRAM, and where the job's wall time went.

    python benchmarks/gpu.py                                   # 300 s budget; writes benchmarks/results/gpu.md
    python benchmarks/gpu.py --budget 60 --no-write            # a quicker look
    python benchmarks/gpu.py --allow-cpu --steps 3 --data stdlib --no-write   # the script itself, on a CPU

Goal (issue #13): MFU >= 40 % and val_bpb <= 0.998 after 300 s on an H100 (autoresearch's baseline:
0.997900, 39.80 % MFU, 953 steps, 45060 MB peak).
"""

import argparse
import datetime
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIMING_NAMES = {  # gpu_jobs' timings, in the order a job spends them
    "prepare_s": "materialize the splits (cached after the first run)",
    "startup_s": "train.py start-up: python, torch, data, model",
    "compile_s": "torch.compile (the first, uncounted steps)",
    "training_s": "counted training",
    "train_s": "train phase, start to exit",
    "handover_s": "last step -> graph handed over",
    "eval_startup_s": "eval process start (hidden behind training)",
    "eval_s": "evaluation on the validation split",
    "total_s": "the whole job",
}


def run(budget, data, cache, steps=None):
    from gpu_jobs.job import JobSpec, run_job

    work = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    try:
        src = work / "src"
        src.mkdir()
        for name in ("train.py", "prepare.py"):
            shutil.copy(ROOT / name, src)
        sha = hashlib.sha256((ROOT / "prepare.py").read_bytes()).hexdigest()
        spec = JobSpec(source_dir=str(src), budget_seconds=budget, timeout_seconds=budget + 900, data=data,
                       expected_harness={"prepare.py": sha}, log_path=str(work / "run.log"), budget_steps=steps)
        environ = dict(os.environ, **({"AUTORESEARCH_CACHE_DIR": cache} if cache else {}))
        result = run_job(spec, on_line=lambda line: print(line, file=sys.stderr, flush=True), environ=environ)
        result["log"] = (work / "run.log").read_text(errors="replace") if (work / "run.log").exists() else ""
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table(result, budget):
    summary = result.get("summary") or {}
    number = lambda key: summary.get(key) if isinstance(summary.get(key), (int, float)) else None  # noqa: E731
    seconds, tokens_m = number("training_seconds"), number("total_tokens_M")
    rows = [
        ("device", result.get("device") or summary.get("device") or "?"),
        ("status", result["status"] + (f" ({result['reason']})" if result.get("reason") else "")),
        ("val_bpb (harness)", f"{result['metric']:.6f}" if result.get("metric") is not None else "—"),
        ("MFU %", f"{number('mfu_percent'):.2f}" if number("mfu_percent") is not None else "—"),
        ("tokens / s", f"{tokens_m * 1e6 / seconds:,.0f}" if seconds and tokens_m is not None else "—"),
        ("steps in the budget", f"{number('num_steps'):.0f}" if number("num_steps") is not None else "—"),
        ("training seconds", f"{seconds:.1f} of {budget:g}" if seconds else "—"),
        ("peak VRAM (MB)", f"{number('peak_vram_mb'):,.0f}" if number("peak_vram_mb") is not None else "—"),
        ("parameters (M)", f"{number('num_params_M'):.1f}" if number("num_params_M") is not None else "—"),
    ]
    lines = ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    timings = result.get("timings") or {}
    lines += ["", "| where the job's time went | seconds |", "|---|---|"]
    lines += [f"| {label} (`{key}`) | {timings[key]:.1f} |" for key, label in TIMING_NAMES.items()
              if isinstance(timings.get(key), (int, float))]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds (default 300)")
    parser.add_argument("--data", default="auto", help="data source (default auto: parquet + BPE on a GPU)")
    parser.add_argument("--cache", default="", help="AUTORESEARCH_CACHE_DIR for the shards and tokenizer")
    parser.add_argument("--steps", type=int, default=None,
                        help="train this many counted steps instead of the time budget (a smoke test)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (checks the script only)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write benchmarks/results/gpu.md")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("no CUDA device here: run this on a GPU machine (pip install torch -e '.[train]' with a "
                         "CUDA build of torch), or pass --allow-cpu to check the script on a CPU")
    result = run(args.budget, args.data, args.cache, args.steps)
    text = (f"{datetime.date.today()} · `python benchmarks/gpu.py --budget {args.budget:g} --data {args.data}` · "
            f"torch {torch.__version__}\n\n" + table(result, args.budget))
    print(text)
    if not args.no_write:
        out = ROOT / "benchmarks" / "results" / "gpu.md"
        out.write_text("# One experiment on a GPU (benchmarks/gpu.py)\n\n" + text + "\n")
        print(f"\nwritten: {out.relative_to(ROOT)}", file=sys.stderr)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
