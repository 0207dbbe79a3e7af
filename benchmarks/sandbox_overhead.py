"""Wall time of one Quick start experiment (real train.py on the CPU, stdlib data) through the job,
before the sandbox issue and now: alternating runs of both checkouts, each in a fresh process.

    python benchmarks/sandbox_overhead.py                  # 4 rounds, budget 15 s, before = c94b085
    python benchmarks/sandbox_overhead.py --rounds 6 --budget 15 --before c94b085

"Before" is a `git worktree` of the given commit (the harness ran inside train.py's process;
no sandbox); "after" is this checkout (materialized splits, the train phase in bubblewrap, the
graph handed to a fresh harness process started ahead). Prints a table and writes
benchmarks/results/sandbox-overhead.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ONE_JOB = r"""
import hashlib, json, os, shutil, sys, tempfile, time
checkout, budget = sys.argv[1], float(sys.argv[2])
sys.path.insert(0, checkout)
from gpu_jobs.job import JobSpec, run_job
work = tempfile.mkdtemp(prefix="overhead-")
src = os.path.join(work, "src")
os.mkdir(src)
for name in ("train.py", "prepare.py"):
    shutil.copy(os.path.join(checkout, name), src)
spec = dict(source_dir=src, budget_seconds=budget, timeout_seconds=budget + 120, data="stdlib",
            expected_harness={"prepare.py": hashlib.sha256(open(os.path.join(src, "prepare.py"), "rb").read()).hexdigest()},
            log_path=os.path.join(work, "run.log"))
fields = JobSpec.__dataclass_fields__
if "result_path" in fields:
    spec["result_path"] = os.path.join(work, "result.json")
if "work_dir" in fields:
    spec["work_dir"] = os.path.join(work, "job")
started = time.monotonic()
result = run_job(JobSpec(**spec), environ=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
wall = time.monotonic() - started
shutil.rmtree(work, ignore_errors=True)
print(json.dumps({"wall_s": wall, "status": result["status"], "metric": result["metric"], "reason": result["reason"],
                  "steps": (result.get("summary") or {}).get("num_steps"), "isolation": result.get("isolation"),
                  "timings": result["timings"]}))
"""


def run_one(checkout, budget, cache):
    env = dict(os.environ, AUTORESEARCH_CACHE_DIR=cache)
    done = subprocess.run([sys.executable, "-c", ONE_JOB, str(checkout), str(budget)], capture_output=True,
                          text=True, env=env, timeout=budget + 600)
    if done.returncode != 0:
        raise SystemExit(f"the job failed in {checkout}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--budget", type=float, default=15.0)
    parser.add_argument("--before", default="c94b085", help="the commit before the sandbox issue")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(before), args.before],
                       check=True)
        cache = str(Path(tmp) / "cache")
        try:
            run_one(ROOT, args.budget, cache)  # warm the split cache and the page cache; not counted
            rows = []
            for round_ in range(args.rounds):
                order = [("before", before), ("after", ROOT)]
                if round_ % 2:
                    order.reverse()
                for label, checkout in order:
                    row = run_one(checkout, args.budget, cache)
                    row.update(label=label, round=round_ + 1, load=os.getloadavg()[0])
                    rows.append(row)
                    print(f"round {round_ + 1} {label:6s} {row['wall_s']:6.1f} s  {row['status']:5s} "
                          f"val_bpb {row['metric'] or float('nan'):.4f}  steps {row['steps']}  load {row['load']:.2f}",
                          flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    report(rows, args)


def report(rows, args):
    def stats(label, key="wall_s"):
        values = [r[key] for r in rows if r["label"] == label and r[key] is not None]
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    (b_mean, b_sd), (a_mean, a_sd) = stats("before"), stats("after")
    lines = [
        f"# Job wall time per experiment, before and after the sandbox ({time.strftime('%Y-%m-%d')})",
        "",
        f"`python benchmarks/sandbox_overhead.py --rounds {args.rounds} --budget {args.budget:g} --before {args.before}`"
        f" on this project's {os.cpu_count()}-core CPU machine (real train.py, CPU profile, stdlib data; "
        "before/after alternate; a warm-up run first).",
        "",
        "| round | checkout | wall s | status | val_bpb | steps | load avg | isolation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['round']} | {r['label']} | {r['wall_s']:.1f} | {r['status']} | "
                     f"{r['metric'] if r['metric'] is None else round(r['metric'], 4)} | {r['steps']} | "
                     f"{r['load']:.2f} | {r.get('isolation') or 'none (before)'} |")
    lines += ["", f"Mean wall time: before {b_mean:.1f} s (sd {b_sd:.1f}), after {a_mean:.1f} s (sd {a_sd:.1f}): "
              f"{100 * (a_mean - b_mean) / b_mean:+.1f} %.", ""]
    after = [r["timings"] for r in rows if r["label"] == "after"]
    if after:
        keys = sorted({k for t in after for k in t if isinstance(t[k], (int, float))})
        lines += ["After, mean seconds per part: " + ", ".join(
            f"{k} {statistics.mean(t[k] for t in after if isinstance(t.get(k), (int, float))):.2f}"
            for k in keys) + "."]
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "sandbox-overhead.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
