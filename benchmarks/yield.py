"""Yield of the decision rules: how many kept changes are real, and what the final head gains.

Runs the real loop (real git repository, local runner, this repository's train.py and
prepare.py on the CPU) twice from the same start: once with `greedy` and one baseline run
(autoresearch's rule), once with `noise-aware` and `--replicates` baseline seeds. Both get the
same proposal sequence (by default one fixed, shuffled list of constant changes, each applied
to whatever the head is by then; `--proposals offline` uses the history-aware proposer, whose
sequences part ways at the rules' first different decision) and the same run seeds (replicate
0 of every run uses the configured seed; confirmations and replicates draw fresh ones).

Then every kept commit of both runs, the final heads and the baseline are re-evaluated on
`--reeval` fresh seeds, interleaved seed by seed so load drift on a shared machine hits all
of them alike. A kept change's true gain is measured against its parent on the same seeds
(paired differences); it is a false keep when that gain is not significantly above zero
(one-sided t test at 95%). The final head's gain is measured against the baseline.

    python benchmarks/yield.py                      # 20 experiments per rule, 20-step runs (25-40 min)
    python benchmarks/yield.py --steps 0 --budget 5 # wall-clock runs: the machine's load is noise too
    python benchmarks/yield.py --experiments 6 --reeval 3 --out /tmp/yield.md   # a quick look
"""

import argparse
import math
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import parse_config  # noqa: E402
from bot.gitops import GitRepo  # noqa: E402
from bot.ledger import Ledger  # noqa: E402
from bot.loop import ResearchLoop  # noqa: E402
from bot.proposers.offline import OfflineProposer  # noqa: E402
from bot.replicates import sample_values  # noqa: E402
from bot.runners.local import LocalRunner  # noqa: E402

# One-sided 95% Student t quantiles by degrees of freedom (two-sided 90%).
T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833,
       10: 1.812, 12: 1.782, 15: 1.753, 20: 1.725, 30: 1.697}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t_quantile(table, df):
    known = [d for d in sorted(table) if d <= df]
    return table[known[-1]] if known else math.inf


def paired(gains):
    """Mean, 95% two-sided CI and whether the mean is significantly > 0 (one-sided 95%)."""
    n = len(gains)
    mean = statistics.fmean(gains)
    if n < 2:
        return mean, (-math.inf, math.inf), False
    se = statistics.stdev(gains) / math.sqrt(n)
    half = t_quantile(T975, n - 1) * se
    return mean, (mean - half, mean + half), mean - t_quantile(T95, n - 1) * se > 0


STEP_CLOCK = ("        training_time += dt\n",
              "        training_time = (step - uncounted_steps + 1) / bench_steps * TIME_BUDGET  # step budget\n")


def step_budget(text, steps):
    """train.py with its wall clock replaced by a step count: TIME_BUDGET still shapes the
    schedule, but exactly `steps` counted steps run, however busy the machine is. A lowercase
    name, so the offline proposer never mutates it."""
    if STEP_CLOCK[0] not in text or "training_time = 0.0\n" not in text:
        raise SystemExit("train.py's training loop changed: update STEP_CLOCK in benchmarks/yield.py, "
                         "or run with --steps 0 (wall clock)")
    text = text.replace("training_time = 0.0\n", f"bench_steps = {int(steps)}\ntraining_time = 0.0\n", 1)
    return text.replace(*STEP_CLOCK)


def make_repo(path, steps=0):
    path.mkdir(parents=True)
    for name in ("train.py", "prepare.py"):
        shutil.copy(ROOT / name, path / name)
    if steps:
        (path / "train.py").write_text(step_budget((ROOT / "train.py").read_text(), steps))
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "start"]):
        subprocess.run(["git", *command], cwd=path, check=True)
    return path


def settings(args, rule):
    return {"tag": rule, "runner": "local", "budget_seconds": args.budget, "data": "stdlib",
            "decision_rule": rule, "replicates": 1 if rule == "greedy" else args.replicates,
            "noise_z": args.z, "max_samples": args.max_samples, "seed": args.seed,
            "max_consecutive_crashes": args.experiments + 1, "timeout_seconds": args.timeout,
            # A step budget trains a fixed number of steps however long they take on a loaded
            # machine: the job's wall-clock stop (budget + start-up allowance) must not cut it.
            **({"startup_seconds": args.timeout} if args.steps else {})}


# Constants that change what one step costs are left out of the scripted list: both rules
# then spend comparable compute per run, and the comparison is about decisions, not speed.
STEP_COST = {"CPU_MODEL_DIM", "CPU_DEPTH", "CPU_N_HEAD", "CPU_DEVICE_BATCH_SIZE", "CPU_TOTAL_BATCH_SIZE",
             "MLP_RATIO"}


def scripted_changes(text, seed):
    """One fixed, shuffled list of (constant, new literal) from train.py's CPU constants, the
    nearest untried values first: the proposal sequence both rules get, in the same order."""
    import random

    from bot.proposers.offline import _active, candidate_values, find_constants, format_value

    changes = []
    for constant in _active(find_constants("train.py", text), "cpu"):
        if constant.name in STEP_COST:
            continue
        for value in candidate_values(constant.name, constant.value)[:2]:
            changes.append((constant.name, format_value(value, constant.literal)))
    random.Random(seed).shuffle(changes)
    return changes


class ScriptedProposer:
    """Proposes the scripted changes in order on whatever the head is now (history-blind), so
    greedy and noise-aware see exactly the same sequence of ideas."""

    name = "scripted"

    def __init__(self, changes):
        self.changes = list(changes)

    def propose(self, base_files, history, device=None, experiment_id=0, avoid=()):
        from bot.errors import ProposalError
        from bot.proposal import Proposal
        from bot.proposers.offline import find_constants

        while self.changes:
            name, literal = self.changes.pop(0)
            text = base_files["train.py"]
            constant = next((c for c in find_constants("train.py", text) if c.name == name), None)
            if constant is None or constant.literal == literal:
                continue
            lines = text.split("\n")
            row = lines[constant.line - 1]
            lines[constant.line - 1] = row[:constant.start] + literal + row[constant.end:]
            return Proposal(f"{name} {constant.literal} -> {literal}", "scripted for the yield benchmark",
                            {"train.py": "\n".join(lines)},
                            {"file": "train.py", "name": name, "old": constant.literal, "new": literal})
        raise ProposalError("the scripted proposal list is used up")


def run_rule(args, scratch, rule, log):
    repo = make_repo(scratch / rule, args.steps)
    config = parse_config(settings(args, rule))
    ledger = Ledger(repo / ".autoresearch" / rule, config.metric)

    def events(kind, **facts):
        if kind == "result":
            r = facts["record"]
            n = len(r.get("replicates") or ())
            value = f"{r['metric']:.4f}" if r.get("metric") is not None else "-"
            log(f"  [{rule}] {int(r['id']):04d} {r['status']:<7} {value} n={n} {r['description']}")

    started = time.monotonic()
    if args.proposals == "scripted":
        proposer = ScriptedProposer(scripted_changes((repo / "train.py").read_text(), args.seed))
    else:  # history-aware: the two rules' sequences part ways at their first different decision
        proposer = OfflineProposer(config.seed)
    loop = ResearchLoop(config, GitRepo(repo), LocalRunner(), proposer, ledger, events=events)
    loop.run(iterations=args.experiments)
    records = ledger.read()
    runs = [run for r in records for run in r.get("replicates") or ()]
    return {"rule": rule, "repo": repo, "config": config, "records": records, "wall_s": time.monotonic() - started,
            "runs": len(runs), "run_s": sum(run.get("total_s") or 0 for run in runs)}


def reevaluate(args, outcomes, log):
    """Each distinct commit (baseline, keeps, heads) on the same fresh seeds, seed by seed."""
    from bot.decide import mean  # noqa: F401  (same arithmetic as the bot)

    targets = []  # (label, repo, commit)
    base = outcomes[0]["records"][0]
    targets.append(("baseline", outcomes[0]["repo"], base["commit"]))
    for outcome in outcomes:
        for r in outcome["records"]:
            if r.get("kind") == "experiment" and r["status"] == "keep":
                targets.append((f"{outcome['rule']}:{int(r['id']):04d}", outcome["repo"], r["commit"]))
    values = {label: [] for label, _, _ in targets}
    config = parse_config(settings(args, "greedy"))
    for j in range(args.reeval):
        seed = args.reeval_seed + j
        for label, repo, commit in targets:
            loop = ResearchLoop(config, GitRepo(repo), LocalRunner(), None, Ledger(repo / ".autoresearch" / "reeval"))
            loop.harness = loop._harness_hashes(commit)
            result = loop._evaluate(9000 + j, commit, seed, f"reeval-{label.replace(':', '-')}-{seed}")
            values[label].append(result.metric if result.status == "ok" else math.nan)
            log(f"  [re-eval seed {seed}] {label:<18} {values[label][-1]:.4f}")
    return values


def table(args, outcomes, fresh, elapsed):
    lines = []
    base_values = fresh["baseline"]
    lines.append("| rule | runs | run time (s) | kept / experiments | keep rate | false keeps | false-keep rate "
                 "| fresh-seed final gain (95% CI) | in-loop claimed gain |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    details = []
    for o in outcomes:
        records = o["records"]
        experiments = [r for r in records if r.get("kind") == "experiment"]
        kept = [r for r in experiments if r["status"] == "keep"]
        by_commit = {r["commit"]: f"{o['rule']}:{int(r['id']):04d}" for r in kept}
        false = 0
        for r in kept:
            label = by_commit[r["commit"]]
            parent = by_commit.get(r["parent"], "baseline")
            gains = [a - b for a, b in zip(fresh[parent], fresh[label]) if not (math.isnan(a) or math.isnan(b))]
            mean, ci, significant = paired(gains) if gains else (math.nan, (math.nan, math.nan), False)
            false += not significant
            ev = r.get("evidence") or {}
            claimed = -(ev.get("delta") or 0.0)
            z = ev.get("z_score")
            details.append(f"| {o['rule']} | {int(r['id']):04d} | {r['description']} | {claimed:+.4f} | "
                           f"{'' if z is None else f'{z:.1f}'} | {len(sample_values(r))} | {mean:+.4f} "
                           f"[{ci[0]:+.4f}, {ci[1]:+.4f}] | {'yes' if significant else '**no**'} |")
        head = kept[-1] if kept else None
        if head:
            gains = [a - b for a, b in zip(base_values, fresh[by_commit[head["commit"]]])
                     if not (math.isnan(a) or math.isnan(b))]
            mean, ci, _ = paired(gains)
            final = f"{mean:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]"
            claimed = records[0]["metric"] - head["metric"]
        else:
            final, claimed = "+0 (head = baseline)", 0.0
        rate = len(kept) / len(experiments) if experiments else 0.0
        false_rate = f"{false / len(kept):.0%}" if kept else "n/a"
        lines.append(f"| {o['rule']} | {o['runs']} | {o['run_s']:.0f} | {len(kept)} / {len(experiments)} | "
                     f"{rate:.0%} | {false} | {false_rate} | {final} | {claimed:+.4f} |")
    out = ["# Yield: greedy vs noise-aware on the CPU train.py", "",
           f"Command: `{' '.join(shlex.quote(a) for a in ['python', 'benchmarks/yield.py', *sys.argv[1:]])}`  ",
           (f"Budget {args.steps} counted training steps per run (train.py's wall clock replaced by a step "
            f"count in the benchmark's copy, so the machine's load does not change what a run trains)"
            if args.steps else f"Budget {args.budget:g} s of wall clock per run") +
           f", {args.experiments} experiments per rule, noise-aware with "
           f"{args.replicates} baseline replicates, z = {args.z:g}, at most {args.max_samples} runs per candidate; "
           f"re-evaluation on {args.reeval} fresh seeds ({args.reeval_seed}…); whole benchmark {elapsed / 60:.1f} min.", "",
           "Gains are val_bpb decreases (positive = better). \"False keep\": the kept change's gain over its "
           "parent, re-measured on the fresh seeds (paired), is not significantly above 0 (one-sided t, 95%).", "",
           *lines, "", "## Every kept change", "",
           "| rule | id | change | claimed gain | z | runs | fresh-seed gain vs parent (95% CI) | significant |",
           "|---|---|---|---|---|---|---|---|", *details, "", "## Fresh-seed values", "",
           "| commit | " + " | ".join(f"seed {args.reeval_seed + j}" for j in range(args.reeval)) + " | mean |",
           "|---|" + "---|" * (args.reeval + 1)]
    for label, values in fresh.items():
        finite = [v for v in values if not math.isnan(v)]
        out.append(f"| {label} | " + " | ".join(f"{v:.4f}" for v in values) +
                   f" | {statistics.fmean(finite) if finite else math.nan:.4f} |")
    sigma = outcomes[-1]["records"][0].get("evidence", {}).get("sigma")
    if sigma is not None:
        out += ["", f"Noise-aware baseline σ (robust, {args.replicates} seeds): {sigma:.4f}."]
    return "\n".join(out) + "\n"


def plots(args, outcomes):
    """progress.png of each rule's run next to the markdown, when matplotlib is installed."""
    try:
        from bot.plot import write_progress_png
        from bot.progress import progress_points

        lines = ["", "## Progress plots", ""]
        for o in outcomes:
            path = Path(args.out).with_name(f"{Path(args.out).stem}-{o['rule']}.png")
            write_progress_png(progress_points(o["records"]), path, title=f"{o['rule']} ({f'{args.steps}-step' if args.steps else f'{args.budget:g} s'} CPU runs)")
            lines.append(f"![{o['rule']}]({path.name})")
        return "\n".join(lines) + "\n"
    except Exception as exc:  # the table matters more than the pictures
        return f"\n(progress plots not drawn: {exc})\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=20, help="experiments per rule (default 20)")
    parser.add_argument("--steps", type=int, default=20,
                        help="counted training steps per run, whatever the load (default 20); 0: the wall-clock "
                             "budget, whose step count on a shared machine varies with its neighbours' load")
    parser.add_argument("--budget", type=float, default=5.0,
                        help="training seconds per run with --steps 0; with steps, the schedule's nominal length")
    parser.add_argument("--timeout", type=float, default=240,
                        help="seconds before a run counts as a crash (default 240: a step budget on a busy "
                             "machine takes longer than its nominal seconds)")
    parser.add_argument("--replicates", type=int, default=3, help="noise-aware baseline seeds (default 3)")
    parser.add_argument("--z", type=float, default=2.0, help="noise-aware z (default 2)")
    parser.add_argument("--max-samples", type=int, default=3, help="noise-aware runs per candidate (default 3)")
    parser.add_argument("--reeval", type=int, default=4, help="fresh seeds for the re-evaluation (default 4)")
    parser.add_argument("--seed", type=int, default=42, help="proposer and first-run seed (default 42)")
    parser.add_argument("--reeval-seed", type=int, default=1001, help="first fresh seed (default 1001)")
    parser.add_argument("--rules", default="greedy,noise-aware", help="comma-separated (default both)")
    parser.add_argument("--proposals", choices=("scripted", "offline"), default="scripted",
                        help="scripted (default): one fixed shuffled list of constant changes, the same for "
                             "both rules; offline: the history-aware proposer (sequences diverge)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "yield.md"))
    args = parser.parse_args()
    started = time.monotonic()

    def log(line):
        print(f"{time.monotonic() - started:7.0f}s {line}", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="yield-"))
    try:
        outcomes = [run_rule(args, scratch, rule, log) for rule in args.rules.split(",")]
        fresh = reevaluate(args, outcomes, log)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        for o in outcomes:  # the ledgers behind the table, for anyone who wants to check it
            shutil.copy(o["repo"] / ".autoresearch" / o["rule"] / "experiments.jsonl",
                        Path(args.out).with_name(f"{Path(args.out).stem}-{o['rule']}.jsonl"))
        text = table(args, outcomes, fresh, time.monotonic() - started)
        print(text, flush=True)
        text += plots(args, outcomes)
        Path(args.out).write_text(text)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
