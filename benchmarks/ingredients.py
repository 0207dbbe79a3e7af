"""What each ingredient of train.py's recipe buys, at a fixed number of steps on the CPU profile.

Every variant is this repository's train.py with some UPPER_CASE constants changed (the way the bot's
proposals change them), run by hand from a throwaway copy for `--steps` counted steps on the stdlib
corpus, on `--seeds` seeds each; val_bpb is scored in-process by prepare.evaluate_bpb (the same
scoring as the harness's eval phase). A fixed step count measures sample efficiency, not speed: the
seconds per step are printed beside it, because on a GPU the budget is wall-clock.

Variants: the shipped recipe; it without one ingredient, or with one of the two that are built in
but off; it at the learning rates it had before taking autoresearch's; and the recipe before issue
#13 (AdamW everywhere, full attention, no value embeddings, no residual scalars, no softcap). Seeds are interleaved (seed 1 of every variant, then seed 2, ...) so that load drift on a
shared machine falls on all variants alike; differences are paired by seed.

    python benchmarks/ingredients.py                         # 200 steps x 3 seeds (~25 min on 2 cores)
    python benchmarks/ingredients.py --steps 60 --seeds 2    # a quick look
    python benchmarks/ingredients.py --first-seed 4 --seeds 6 --only "shipped recipe" "+ logit softcap 15"   # a close call
"""

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# train.py before issue #13: AdamW everywhere at 1e-3, full attention, none of the ingredients
OLD_RATES = {"MATRIX_LR": "0.02", "EMBEDDING_LR": "0.02", "LEARNING_RATE": "1e-3", "SCALAR_LR": "0.01",
             "ADAM_BETA1": "0.9", "WARMUP_RATIO": "0.02", "WARMDOWN_RATIO": "0.3"}
OLD_RECIPE = dict(OLD_RATES, MUON="False", SHORT_WINDOW="1.0", VALUE_EMBED_EVERY="0", RESIDUAL_SCALARS="False",
                  LOGIT_SOFTCAP="0.0", EMBEDDING_LR="1e-3")
VARIANTS = {
    "shipped recipe": {},
    "- Muon (AdamW on matrices)": {"MUON": "False"},
    "- sliding windows (all full)": {"SHORT_WINDOW": "1.0"},
    "- residual scalars": {"RESIDUAL_SCALARS": "False"},
    "+ value embeddings (every 2nd layer)": {"VALUE_EMBED_EVERY": "2"},
    "+ logit softcap 15": {"LOGIT_SOFTCAP": "15.0"},
    "rates before autoresearch's": OLD_RATES,
    "previous recipe (none of them)": OLD_RECIPE,
}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def edited_source(changes):
    source = (ROOT / "train.py").read_text()
    for name, value in changes.items():
        source, count = re.subn(rf"(?m)^{name} = [^#\n]*?(\s+#)", rf"{name} = {value}\1", source)
        if count != 1:
            raise SystemExit(f"train.py has no single `{name} = ...` line; update VARIANTS")
    return source


def run(changes, seed, steps, work):
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(ROOT / "prepare.py", work)
    (work / "train.py").write_text(edited_source(changes))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    env.update(AUTORESEARCH_BUDGET_STEPS=str(steps), AUTORESEARCH_BUDGET_SECONDS="100000", AUTORESEARCH_SEED=str(seed),
               AUTORESEARCH_DATA="stdlib", CUDA_VISIBLE_DEVICES="")
    process = subprocess.run([sys.executable, "train.py"], cwd=work, env=env, capture_output=True, text=True)
    values = dict(re.findall(r"(?m)^(val_bpb|training_seconds|num_steps):\s+(\S+)$", process.stdout))
    if process.returncode != 0 or "val_bpb" not in values:
        return math.nan, math.nan
    return float(values["val_bpb"]), float(values["training_seconds"]) / max(1.0, float(values["num_steps"]))


def ci(values):
    if len(values) < 2:
        return math.nan
    return T975.get(len(values) - 1, 2.0) * statistics.stdev(values) / math.sqrt(len(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="counted training steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (paired across variants)")
    parser.add_argument("--first-seed", type=int, default=1, help="seeds run from here (more seeds for a close call)")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    args = parser.parse_args()
    variants = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}
    results = {name: [] for name in variants}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ingredients-") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for name, changes in variants.items():
                bpb, step_s = run(changes, seed, args.steps, Path(tmp) / "work")
                results[name].append((bpb, step_s))
                print(f"seed {seed} | {name:32s} | val_bpb {bpb:.4f} | {step_s * 1000:.0f} ms/step", file=sys.stderr,
                      flush=True)
    reference = [bpb for bpb, _ in results.get("shipped recipe", [])]
    print(f"\n{args.steps} counted steps on the CPU profile (stdlib corpus, byte-level), seeds {args.first_seed}-"
          f"{args.first_seed + args.seeds - 1}; "
          f"{(time.time() - started) / 60:.1f} min\n")
    print("| variant | val_bpb mean | ±95% CI | vs shipped recipe (paired) | ms/step |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        bpbs = [b for b, _ in rows]
        mean = statistics.fmean(bpbs)
        delta = ""
        if reference and name != "shipped recipe" and len(reference) == len(bpbs):
            diffs = [b - r for b, r in zip(bpbs, reference)]
            delta = f"{statistics.fmean(diffs):+.4f} ± {ci(diffs):.4f}"
        print(f"| {name} | {mean:.4f} | {ci(bpbs):.4f} | {delta} | {statistics.fmean(s for _, s in rows) * 1000:.0f} |")


if __name__ == "__main__":
    main()
