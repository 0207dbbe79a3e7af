"""How does `bot run --parallel N` scale? Experiments per hour and parallel efficiency, N = 1..16.

The real loop (real git repository, proposal validation, commits, branches, ledger, decisions,
the stacking rule) with stand-ins that sleep, so this machine's cores do not limit: the
runner's jobs take J seconds, the proposer answers after D seconds (a fresh change each time,
so every proposal applies on any head, like the Claude proposer it stands for: `prefetch`), and
a publisher stand-in sleeps P seconds per GitHub write it would make (3 to open a PR, 4 to
decide it, 2 for the report). Stand-in metrics make about one experiment in four an improvement, so
batches keep, discard, and re-evaluate superseded keeps on the new head.

N = 1 is the serial loop (`bot run` without --parallel); efficiency(N) = throughput(N) /
(N × throughput(1)). Throughput is experiments over the time from the end of the baseline's job
to the end of the last experiment's job, over `--batches` batches of N (N = 1: that many
experiments): every gap between jobs counts (proposals, commits, decisions, ledger, GitHub
writes on the critical path); the GitHub writes of the last batch, made once after its jobs
end, are shown apart ("until the run returns").

    python benchmarks/parallel.py                       # the table in benchmarks/results/parallel.md
    python benchmarks/parallel.py --job 4 --batches 2   # quicker
"""

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import TOY_TRAIN, make_repo

from bot.config import parse_config
from bot.gitops import GitRepo
from bot.ledger import Ledger
from bot.loop import ResearchLoop
from bot.parallel import BatchLoop
from bot.proposal import Proposal
from bot.runners import RunResult
from standins import SleepingHandle

MARK = 'BEHAVIOUR = "ok"'


class SleepingRunner:
    """Jobs of `seconds`. The metric is 3.0 minus 0.01 for each constant K<n> with n % 4 == 0 in
    the source: about one change in four improves, and improvements stack."""
    name = "sleeping"

    def __init__(self, seconds):
        self.seconds, self.spans = seconds, []

    def submit(self, experiment):
        text = (Path(experiment.source_dir) / "train.py").read_text()
        good = sum(1 for line in text.splitlines() if line.startswith("K") and int(line.split(" = ")[1]) % 4 == 0)
        metric = 3.0 - 0.01 * good + (0.0 if experiment.id == 0 else 0.001)
        result = RunResult(status="ok", metric=metric, summary={"val_bpb": metric}, device="cpu",
                           timings={"total_s": self.seconds})
        return SleepingHandle(self.seconds, result, self.spans)


class SleepingProposer:
    """Answers after `delay` seconds with a new constant; asked from several threads at once."""
    name = "sleeping"
    prefetch = True  # slow: asked for while experiments train

    def __init__(self, delay):
        self.delay, self.lock, self.count, self.busy, self.peak = delay, threading.Lock(), 0, 0, 0

    def propose(self, base_files, history, device=None, experiment_id=0, avoid=(), base_commit=None, running=()):
        with self.lock:
            self.count += 1
            n, self.busy = self.count, self.busy + 1
            self.peak = max(self.peak, self.busy)
        time.sleep(self.delay)
        with self.lock:
            self.busy -= 1
        text = base_files["train.py"].replace(MARK, f"{MARK}\nK{n} = {n}", 1)
        return Proposal(f"add K{n}", "benchmark", {"train.py": text})


class SleepingPublisher:
    """GitHub mode's calls, each sleeping `seconds` per write the real publisher makes."""

    def __init__(self, seconds):
        self.seconds, self.writes = seconds, 0

    def _write(self, count):
        self.writes += count
        time.sleep(self.seconds * count)

    def started(self, exp_id, branch, commit, base, description, rationale=""):
        self._write(3)  # push, open the draft PR, label it running
        return exp_id

    def guard(self, record, reference):
        return record

    def finish(self, record, reference, strict=True):
        self._write(4)  # body, ready for review, label, merge or close

    def update_report(self, records):
        self._write(2)  # the report PR's title and body

    def decided(self, record, reference, records):
        self.finish(record, reference)
        self.update_report(records)


def measure(n, job, delay, write, batches, serial_proposals=False):
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", {"train.py": TOY_TRAIN.format(behaviour="ok")})
        config = parse_config({"harness": [], "decision_rule": "greedy", "replicates": 1, "budget_seconds": 1,
                               "max_consecutive_crashes": 1000})
        runner, proposer, publisher = SleepingRunner(job), SleepingProposer(delay), SleepingPublisher(write)
        proposer.prefetch = not serial_proposals  # off: each proposal asked when its batch forms, one by one
        loop = ResearchLoop(config, GitRepo(repo), runner, proposer, Ledger(Path(tmp) / "ledger"),
                            publisher=publisher)
        experiments = n * batches
        started = time.monotonic()
        (BatchLoop(loop, n) if n > 1 else loop).run(iterations=experiments)
        ended = time.monotonic()
        records = loop.ledger.read()
    baseline_end, last_end = runner.spans[0][1], max(end for _, end in runner.spans)
    wall = last_end - baseline_end
    return {"n": n, "experiments": experiments, "wall": wall, "per_hour": experiments / wall * 3600,
            "tail": ended - last_end,
            "setup": baseline_end - started, "keeps": sum(r["status"] == "keep" for r in records[1:]),
            "reapplied": sum("reapplied_from" in r for r in records), "writes": publisher.writes,
            "peak_asks": proposer.peak}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", type=float, default=10.0, help="J: seconds per job")
    parser.add_argument("--delay", type=float, default=2.0, help="D: seconds per proposal")
    parser.add_argument("--write", type=float, default=0.05, help="P: seconds per GitHub write")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--n", default="1,2,4,8,16")
    parser.add_argument("--serial-proposals", action="store_true",
                        help="ask for proposals one by one as each batch forms (what this design avoids)")
    args = parser.parse_args()
    rows = []
    for n in (int(x) for x in args.n.split(",")):
        rows.append(measure(n, args.job, args.delay, args.write, args.batches, args.serial_proposals))
        print(f"N={n}: {rows[-1]['per_hour']:.0f} experiments/h", file=sys.stderr)
    one = next((r["per_hour"] for r in rows if r["n"] == 1), None)
    print(f"J = {args.job:g} s per job, D = {args.delay:g} s per proposal, P = {args.write:g} s per GitHub write; "
          f"{args.batches} batches of N (N = 1: the serial loop)"
          + ("; proposals asked one by one as each batch forms" if args.serial_proposals else "") + "\n")
    print("| N | experiments | baseline's end → last job's end | experiments per hour | ideal (N × 3600 / J) | "
          "parallel efficiency | then until the run returns | keeps | re-evaluated on a new head | GitHub writes | "
          "proposals asked at once (max) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ideal = r["n"] * 3600 / args.job
        efficiency = f"{r['per_hour'] / (r['n'] * one):.1%}" if one else "-"
        print(f"| {r['n']} | {r['experiments']} | {r['wall']:.1f} s | {r['per_hour']:.0f} | {ideal:.0f} | {efficiency} | "
              f"{r['tail']:.1f} s | {r['keeps']} | {r['reapplied']} | {r['writes']} | {r['peak_asks']} |")


if __name__ == "__main__":
    main()
