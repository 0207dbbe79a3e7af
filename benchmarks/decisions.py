"""Decision rules scored against a known truth: false keeps, true gain, runs ending worse.

Nothing trains. Each world is a real git repository whose train.py is a stand-in: eight
UPPER_CASE constants and no code that matters. A stand-in runner reads the constants of the
commit it is given and answers val_bpb = truth(constants) + Gaussian noise, so every keep can
be scored by the truth the rule never sees. The rest is the real bot: the real loop in trust
mode (`harness: []`), the offline proposer, git, the ledger and the rule under test.

The objective (design choices, stated so the table can be judged):
- truth = 1 + Σ wᵢ·dᵢ², a separable bowl with its optimum inside the proposer's reach: dᵢ is
  the log2 distance to the optimum for scale constants (LR, WIDTH, WEIGHT_DECAY, ADAM_BETA2's
  1 − β), the linear one for DEPTH and WARMUP_RATIO. At the start it is 0.193 above the optimum.
  One good proposer step gains 0.009–0.045 (0.9–4.5 σ at 1× noise; on the real CPU train.py the
  yield benchmark measured real gains of 1.7–9 σ), a bad one loses as much or more.
- GRAD_CLIP has no effect at all (true gain exactly 0), as many real constants barely do.
- EVAL_BATCHES changes only the noise: σ = base · (16 / EVAL_BATCHES). Halving it doubles the
  noise, doubling it halves it; its true gain is exactly 0 either way and a keep of it is a
  false keep whatever the direction.
- Noise: base σ 0.01 at 1×, 0.05 at 5×; every run draws fresh noise (seeds are ignored, as on
  a loaded machine or a wall-clock budget: greedy's first runs are not paired).
- False keep: a kept change whose true gain over its parent is ≤ MARGIN (0.001, a tenth of one
  run's noise at 1×).

    python benchmarks/decisions.py                          # 20 seeds × 30 experiments, both rules, 1× and 5×
    python benchmarks/decisions.py --worlds 3 --experiments 10 --out /tmp/d.md   # a quick look
    python benchmarks/decisions.py --bot-root /tmp/before --label "noise-aware (before #12)" --rules noise-aware
        # rows for another checkout's bot/ (e.g. `git archive <commit> bot | tar -x -C /tmp/before`)
"""

import argparse
import json
import math
import multiprocessing
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARGIN = 0.001
BASE_SIGMA = 0.01
NOISE_ONLY, NO_EFFECT = "EVAL_BATCHES", "GRAD_CLIP"

TRAIN = '''"""A stand-in train.py (benchmarks/decisions.py): only its constants matter."""
LR = 0.004  # learning rate
WIDTH = 96  # model width
DEPTH = 6  # layers
WARMUP_RATIO = 0.3  # fraction of the budget spent warming up
WEIGHT_DECAY = 0.3  # AdamW weight decay
ADAM_BETA2 = 0.99  # AdamW beta2
GRAD_CLIP = 1.0  # gradient clipping norm (no effect on this objective)
EVAL_BATCHES = 16  # evaluation batches (changes only the measurement noise)
SEED = 42
'''

OBJECTIVE_START = {c.split(" = ")[0]: float(c.split(" = ")[1].split("  #")[0]) for c in TRAIN.splitlines()
                   if " = " in c and c[0].isupper()}

# name: (optimum, weight, kind); "log": log2 distance (for ADAM_BETA2, of 1 − β), "lin": linear
OBJECTIVE = {"LR": (0.008, 0.036, "log"), "WIDTH": (128, 0.06, "log"), "DEPTH": (8, 0.006, "lin"),
             "WARMUP_RATIO": (0.1, 1.5, "lin"), "WEIGHT_DECAY": (0.1, 0.012, "log"),
             "ADAM_BETA2": (0.95, 0.006, "beta")}


def truth(constants):
    total = 1.0
    for name, (optimum, weight, kind) in OBJECTIVE.items():
        value = constants[name]
        if kind == "log":
            d = math.log2(value / optimum) if value > 0 else 10.0
        elif kind == "beta":
            d = math.log2((1 - value) / (1 - optimum)) if 0 < value < 1 else 10.0
        else:
            d = value - optimum
        total += weight * d * d
    return total


def noise_sigma(constants, level):
    return BASE_SIGMA * level * 16 / max(constants[NOISE_ONLY], 1)


class StandInRunner:
    """Answers a run at once with truth + noise for the constants of the commit it is given."""

    name = "stand-in"

    def __init__(self, level, seed):
        self.level, self.rng = level, random.Random(seed)
        self.truth, self.sigma, self.runs = {}, {}, 0

    def submit(self, experiment):
        from bot.proposers.offline import find_constants
        from bot.runners import FinishedHandle, RunResult

        text = (Path(experiment.source_dir) / "train.py").read_text()
        constants = {c.name: c.value for c in find_constants("train.py", text)}
        self.truth[experiment.commit] = truth(constants)
        self.sigma[experiment.commit] = noise_sigma(constants, self.level)
        self.runs += 1
        value = self.truth[experiment.commit] + self.rng.gauss(0.0, self.sigma[experiment.commit])
        return FinishedHandle(RunResult(status="ok", metric=value, summary={"val_bpb": value}, device="cpu",
                                        timings={"total_s": 1.0}, metric_source="printed",
                                        flags=("trust mode: no harness result, the printed value was used",)))


def one_world(job):
    """One rule, one noise level, one seed: the real loop for `experiments` experiments."""
    bot_root, rule, level, seed, experiments, extra = job
    sys.path.insert(0, bot_root)
    from bot.config import parse_config
    from bot.gitops import GitRepo
    from bot.ledger import Ledger
    from bot.loop import ResearchLoop
    from bot.proposers.offline import OfflineProposer

    with tempfile.TemporaryDirectory(prefix="decisions-") as scratch:
        repo = Path(scratch) / "repo"
        repo.mkdir()
        (repo / "train.py").write_text(TRAIN)
        for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                        ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "start"]):
            subprocess.run(["git", *command], cwd=repo, check=True)
        config = parse_config({"tag": "bench", "harness": [], "budget_seconds": 1, "decision_rule": rule,
                               "replicates": 1 if rule == "greedy" else 3, "seed": 42,
                               "max_consecutive_crashes": experiments + 1, **extra})
        ledger = Ledger(repo / ".autoresearch" / "bench", config.metric)
        runner = StandInRunner(level, seed=(seed, rule, level).__repr__())
        loop = ResearchLoop(config, GitRepo(repo), runner, OfflineProposer(seed), ledger)
        outcome = loop.run(iterations=experiments)
        records = ledger.read()
    return score(records, runner, outcome)


def score(records, runner, outcome):
    baseline = records[0]
    head, keeps = baseline, []
    for r in records[1:]:
        if r.get("kind") == "experiment" and r["status"] == "keep":
            gain = runner.truth[r["parent"]] - runner.truth[r["commit"]]
            change = (r.get("change") or {}).get("name")
            keeps.append({"gain": gain, "name": change, "evidence": r.get("evidence") or {}})
            head = r
    start, end = runner.truth[baseline["commit"]], runner.truth[head["commit"]]
    fresh = (head.get("evidence") or {}).get("fresh_mean")
    return {"experiments": sum(r.get("kind") == "experiment" for r in records), "runs": runner.runs,
            "keeps": len(keeps), "false_keeps": sum(k["gain"] <= MARGIN for k in keeps),
            "noise_only_keeps": sum(k["name"] == NOISE_ONLY for k in keeps),
            "no_effect_keeps": sum(k["name"] == NO_EFFECT for k in keeps),
            "gain": start - end, "head_bias": head["metric"] - end if head is not baseline else None,
            "fresh_bias": fresh - end if fresh is not None else None,
            "head_noise": runner.sigma[head["commit"]] / runner.sigma[baseline["commit"]],
            "near_misses": sum(bool((r.get("evidence") or {}).get("near_miss")) for r in records),
            "stop": outcome["stop_reason"]}


def summarize(label, level, worlds):
    gains = [w["gain"] for w in worlds]
    keeps = sum(w["keeps"] for w in worlds)
    false = sum(w["false_keeps"] for w in worlds)
    head_bias = [w["head_bias"] for w in worlds if w["head_bias"] is not None]
    fresh_bias = [w["fresh_bias"] for w in worlds if w["fresh_bias"] is not None]
    return {"label": label, "noise": level, "worlds": len(worlds), "keeps": keeps, "false_keeps": false,
            "gain_mean": statistics.fmean(gains), "gain_sd": statistics.stdev(gains) if len(gains) > 1 else 0.0,
            "worse": sum(g < -1e-12 for g in gains), "nothing": sum(abs(g) <= 1e-12 for g in gains),
            "noise_only_keeps": sum(w["noise_only_keeps"] for w in worlds),
            "no_effect_keeps": sum(w["no_effect_keeps"] for w in worlds),
            "runs": sum(w["runs"] for w in worlds), "experiments": sum(w["experiments"] for w in worlds),
            "head_bias": statistics.fmean(head_bias) if head_bias else None,
            "fresh_bias": statistics.fmean(fresh_bias) if fresh_bias else None,
            "noisier_heads": sum(w["head_noise"] > 1 + 1e-9 for w in worlds),
            "near_misses": sum(w["near_misses"] for w in worlds)}


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def render(rows):
    best = truth(dict(OBJECTIVE_START)) - 1.0
    lines = ["# Decision rules against a known truth", "",
             "Objective, noise and margins: see the docstring of `benchmarks/decisions.py`. Gains are true "
             f"val_bpb decreases of the final head over the start (positive = better; the most there is to "
             f"gain is {best:.3f}). False keep: true gain over its parent ≤ {MARGIN}. Each row: "
             f"{rows[0]['worlds'] if rows else 0} seeds, the real loop in trust mode, the offline proposer.", "",
             "| rule | noise | false keeps / keeps | true gain (mean ± sd) | runs ending worse | gained nothing "
             "| noise-only keeps | no-effect keeps | trainings spent (experiments) | head's reported − true "
             "| fresh-seed − true | near misses flagged |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share = f" ({r['false_keeps'] / r['keeps']:.0%})" if r["keeps"] else ""
        lines.append(
            f"| {r['label']} | {r['noise']:g}× | {r['false_keeps']} / {r['keeps']}{share} | "
            f"{r['gain_mean']:+.4f} ± {r['gain_sd']:.4f} | {r['worse']} / {r['worlds']} | {r['nothing']} / {r['worlds']} | "
            f"{r['noise_only_keeps']} | {r['no_effect_keeps']} | {r['runs']} ({r['experiments']}) | "
            f"{_fmt(r['head_bias'], '+.4f')} | {_fmt(r['fresh_bias'], '+.4f')} | {r['near_misses']} |")
    lines += ["", "Commands (each row's; the `.json` beside this file holds the raw rows):", ""]
    for command in dict.fromkeys(r.get("command", "?") for r in rows):
        lines.append(f"- `{command}`")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", type=int, default=20, help="seeds per rule and noise level (default 20)")
    parser.add_argument("--experiments", type=int, default=30, help="experiments per world (default 30)")
    parser.add_argument("--rules", default="greedy,noise-aware")
    parser.add_argument("--noise", default="1,5", help="noise levels, × the base σ 0.01 (default 1,5)")
    parser.add_argument("--label", default="", help="prefix for the rows' rule names (another checkout's bot)")
    parser.add_argument("--bot-root", default=str(ROOT), help="the checkout whose bot/ is measured")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "decisions.md"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an autoresearch.yaml setting for every world (e.g. --set max_samples=5)")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    started = time.monotonic()
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/decisions.py", *sys.argv[1:]])
    raw_path = Path(args.out).with_suffix(".json")
    rows = json.loads(raw_path.read_text()) if raw_path.exists() else []
    for rule in args.rules.split(","):
        for level in (float(x) for x in args.noise.split(",")):
            label = args.label or rule
            jobs = [(args.bot_root, rule, level, seed, args.experiments, extra) for seed in range(args.worlds)]
            with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
                worlds = pool.map(one_world, jobs)
            row = summarize(label, level, worlds)
            row["command"] = command
            row["minutes"] = round((time.monotonic() - started) / 60, 2)
            print(json.dumps(row), flush=True)
            rows = [r for r in rows if (r["label"], r["noise"]) != (label, level)] + [row]
    rows.sort(key=lambda r: (r["noise"], r["label"]))
    raw_path.write_text(json.dumps(rows, indent=1) + "\n")
    Path(args.out).write_text(render(rows))
    print(render(rows))


if __name__ == "__main__":
    main()
