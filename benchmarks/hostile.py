"""Every hostile train.py of tests/hostile/cases.py through the real job, as a table.

Each case runs in the sandbox (gpu_jobs.job.run_job, isolation="sandbox") in a fresh world (new
fake secrets, fake HOME, a real user repository, loopback servers), and is judged as the tests
judge it. Verdicts: refused (the job or the harness said no), crashed (the attack's own code
failed), no-gain (scored, and no better than an honest run), ACCEPTED (scored better than an
honest run may); "+ BREACH" when a secret, a persistence target, a host path or a server outside
the sandbox was reached. Also runs the real train.py once, honestly, for reference.

    python benchmarks/hostile.py [--only NAME ...] [--output benchmarks/results/hostile.md]
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # before benchmarks/: `hostile` is the test package
sys.path.insert(1, str(ROOT))

from hostile.cases import CASES, HONEST, Case  # noqa: E402
from hostile.harness import World, describe, judge, run_case  # noqa: E402

from gpu_jobs import sandbox  # noqa: E402

LOADER_PROBE = r"""
import json, struct, sys, torch
sys.path.insert(0, sys.argv[1])
import prepare
T, V = prepare.MAX_SEQ_LEN, prepare.VOCAB_SIZE
header = {"input": {"shape": [1, T], "dtype": "int64", "device": "cpu"},
          "tensors": [{"name": "small", "dtype": "float32", "shape": [16], "device": "cpu", "offset": 0, "nbytes": 64},
                      {"name": "zeros", "dtype": "float32", "shape": [1, T, V], "device": "cpu", "offset": 64,
                       "nbytes": T * V * 4}],
          "nodes": [{"op": "aten._reshape_alias.default", "args": [{"tensor": 0}, [V], [1]], "kwargs": {}},
                    {"op": "aten.add.Tensor", "args": [{"tensor": 1}, {"node": 0, "item": None}], "kwargs": {}}],
          "output": {"node": 1, "item": None}}
text = json.dumps(header).encode()
path = sys.argv[2]
open(path, "wb").write(prepare.GRAPH_MAGIC + struct.pack("<Q", len(text)) + text + bytes(64 + T * V * 4))
try:
    out = prepare.GraphProgram(path)(torch.zeros(1, T, dtype=torch.int64))
    print(f"ran: {int((out[0, 0, 16:] != 0).sum())} of 240 floats read from beyond a 16-float tensor are non-zero")
except Exception as exc:
    print(f"refused: {type(exc).__name__}: {exc}")
"""


# Where a case that gets through gets through (shown only when it does).
WHERE = {
    "leak_large_offset": "prepare.score_bpb: the causality tolerance is 1e-4 (1e-2 under autocast) x max|logit| of the "
                         "row, and a constant added to every logit changes no probability but lifts that tolerance",
    "leak_neg_inf_nan": "prepare.score_bpb: -inf - -inf = NaN in `diff`; `diff > tolerance` is False for NaN and "
                        "`max(worst, nan)` keeps `worst`, so causal_max_diff stays finite and no row counts as broken",
    "val_other_python_copies": "prepare._stdlib_bytes hides only this Python's copies and /usr/lib/python3*, "
                               "/usr/local/lib/python3*, /usr/lib64/python3*; the sandbox mounts all of /usr, where "
                               "other interpreters keep their own stdlib (here /usr/lib/google-cloud-sdk/platform/"
                               "bundledpythonunix/lib/python3.12/{xmlrpc,wsgiref,curses,dbm,sqlite3}, ~190 KB of "
                               "the ~900 KB validation text, near-identical)",
    "fm_forged_pr_marker": "bot/messages.pr_body puts the crash reason (the experiment's last output line) and the log "
                           "tail before the bot's marker, and parse_marker takes the first match (used by "
                           "bot/github/rebuild.py and bot/github/command_handler.py)",
}


def loader_probe(tmp):
    """In a subprocess (it reads heap memory): does the loader run a view past its storage?"""
    done = subprocess.run([sys.executable, "-c", LOADER_PROBE, str(ROOT), str(Path(tmp) / "oob.graph")],
                          capture_output=True, text=True, timeout=120)
    line = (done.stdout.strip().splitlines() or [done.stderr.strip()[-200:] or f"exit {done.returncode}"])[-1]
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "hostile.md"))
    parser.add_argument("--no-train-py", action="store_true", help="skip the honest run of the real train.py")
    args = parser.parse_args()
    cases = [c for c in CASES if args.only is None or c.name in args.only]
    started = time.monotonic()
    ok, isolation = sandbox.probe()
    if not ok:
        sys.exit(f"no sandbox here: {isolation}")
    base = Path(tempfile.mkdtemp(prefix="hostile-bench-"))
    cache = base / "cache"
    prepare_bytes = (ROOT / "prepare.py").read_bytes()  # one harness for the whole run, even if edited meanwhile

    def fresh(name):
        return World(base / name, cache, prepare_bytes)

    world = fresh("honest")
    honest_outcome = run_case(HONEST, world)  # also prepares the splits into the cache
    world.close()
    honest = honest_outcome.result["metric"]
    if honest_outcome.result["status"] != "ok":
        sys.exit(f"the honest bigram did not score: {honest_outcome.result['reason']}")
    print(f"honest bigram (baseline of the `honest` cases): val_bpb {honest:.4f}", flush=True)
    train_py = None
    if not args.no_train_py:
        world = fresh("train-py")
        real = Case(name="train_py", klass="honest", expect="bounded", body="")
        outcome = run_case(real, world, source=(ROOT / "train.py").read_text())
        world.close()
        train_py = outcome.result
        print(f"real train.py, 1 s budget: {describe(outcome)}", flush=True)

    rows, outcomes = [], []
    width = max([len(c.name) for c in cases] + [len("loader_reshape_alias_oob")])
    print(f"\n{'case':<{width}} | {'class':<17} | {'outcome (status / metric / reason)':<70} | verdict")
    for case in cases:
        world = fresh(case.name)
        try:
            outcome = judge(run_case(case, world), world, honest)
        finally:
            world.close()
        outcomes.append(outcome)
        text = describe(outcome, 70)
        rows.append((case.name, case.klass, describe(outcome, 110), outcome.verdict, outcome.seconds))
        print(f"{case.name:<{width}} | {case.klass:<17} | {text:<70} | {outcome.verdict}", flush=True)
    probe = loader_probe(base)
    probe_verdict = "ACCEPTED" if probe.startswith("ran") else "refused"
    print(f"{'loader_reshape_alias_oob':<{width}} | {'graph loader':<17} | {probe[:70]:<70} | {probe_verdict}")
    wall = time.monotonic() - started

    verdicts = [o.verdict for o in outcomes] + [probe_verdict]
    counts = {v: sum(1 for x in verdicts if x == v) for v in sorted(set(verdicts))}
    command = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    lines = [
        "# Hostile train.py variants against the sandboxed two-phase job",
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: `{command}` (from the repository root)",
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, {platform.machine()}, "
        f"Python {platform.python_version()}, torch {__import__('torch').__version__}, no GPU",
        f"- isolation: `isolation=\"sandbox\"` ({isolation}); every case's result reports isolation "
        f"{sorted({o.result.get('isolation') for o in outcomes})}",
        "- budget: 1 s (start-up allowance 60 s; the two budget cases 1 s + 3 s); data: stdlib; seed 42",
        f"- honest baselines: the deterministic honest bigram (what every `honest` case builds on): "
        f"val_bpb **{honest:.4f}**; the real train.py, 1 s budget: "
        + (f"val_bpb **{train_py['metric']:.4f}** ({train_py['status']}, {train_py['timings'].get('total_s')} s)"
           if train_py and train_py.get("metric") is not None else f"{(train_py or {}).get('status', 'not run')}"),
        "- bound for cases that do not train: val_bpb >= 3.0; for `honest` cases: >= honest - 0.05",
        f"- {len(cases)} cases + 1 loader probe in {wall:.0f} s; verdicts: "
        + ", ".join(f"{v} {n}" for v, n in counts.items()),
        "",
        "| case | class | outcome (status / metric / reason) | verdict |",
        "|---|---|---|---|",
    ]
    for name, klass, text, verdict, _ in rows:
        shown = f"**{verdict}**" if "ACCEPTED" in verdict or "BREACH" in verdict else verdict
        lines.append(f"| {name} | {klass} | {text.replace('|', '/')} | {shown} |")
    lines.append(f"| loader_reshape_alias_oob | graph loader | {probe.replace('|', '/')[:110]} | "
                 f"{'**ACCEPTED**' if probe_verdict == 'ACCEPTED' else probe_verdict} |")
    findings = [o for o in outcomes if o.problems]
    lines += ["", "## What got through", ""]
    if not findings and probe_verdict != "ACCEPTED":
        lines.append("Nothing: every case was refused, crashed, or scored no better than an honest run, and no "
                     "secret, persistence target, host path or server outside the sandbox was reached.")
    for o in findings:
        lines.append(f"- **{o.case.name}** ({o.case.klass}; {o.case.note}): " + "; ".join(o.problems)
                     + (f". Where: {WHERE[o.case.name]}." if o.case.name in WHERE else ""))
    if probe_verdict == "ACCEPTED":
        lines.append("- **loader_reshape_alias_oob** (graph loader): prepare.GraphProgram runs "
                     "`aten._reshape_alias`, which makes a view larger than its storage without a bounds check; "
                     f"the trusted eval process then reads (and an in-place op would write) its own heap: {probe}")
    lines += ["", "Each case's attack is in tests/hostile/cases.py; the checks every case gets are in "
              "tests/hostile/harness.py (`judge`).", ""]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines))
    print(f"\n{len(cases)} cases in {wall:.0f} s: " + ", ".join(f"{v} {n}" for v, n in counts.items()))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
