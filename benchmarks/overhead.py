"""The bot's own overhead per experiment, excluding the training subprocess.

Runs the real loop (real git repository, real offline proposer, validation, ledger) on a
copy of this repository's train.py and prepare.py, with a runner that answers instantly,
and times each phase. Prints a table.

    python benchmarks/overhead.py [--experiments 30]
"""

import argparse
import collections
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
from bot.runners import FinishedHandle, RunResult  # noqa: E402

TIMES = collections.defaultdict(list)


def timed(phase, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            TIMES[phase].append(time.perf_counter() - start)
    return wrapper


class InstantRunner:
    """Answers at once with a metric drawn from a fixed sequence: no training at all."""

    name = "instant"

    def __init__(self):
        self.count = 0

    def submit(self, experiment):
        self.count += 1
        value = 3.5 - 0.001 * ((self.count * 7919) % 13)
        return FinishedHandle(RunResult(status="ok", metric=value, summary={"val_bpb": value}, device="cpu",
                                        timings={"total_s": 0.0}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=30)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="overhead-"))
    try:
        repo = scratch / "repo"
        repo.mkdir()
        for name in ("train.py", "prepare.py"):
            shutil.copy(ROOT / name, repo / name)
        for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                        ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "start"]):
            subprocess.run(["git", *command], cwd=repo, check=True)
        config = parse_config({"budget_seconds": 1})
        git = GitRepo(repo)
        for method in ("commit_files", "create_branch", "move_branch", "export_tree", "read_file", "list_files"):
            setattr(git, method, timed(f"git {method}", getattr(git, method)))
        proposer = OfflineProposer()
        proposer.propose = timed("propose", proposer.propose)
        ledger = Ledger(repo / ".autoresearch" / "default")
        ledger.append = timed("ledger append", ledger.append)
        import bot.loop
        bot.loop.validate = timed("validate", bot.loop.validate)
        loop = ResearchLoop(config, git, InstantRunner(), proposer, ledger)
        loop.experiment = timed("whole experiment", loop.experiment)
        loop.run(iterations=args.experiments)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"Bot overhead per experiment, training excluded ({args.experiments} experiments, "
          f"real git repo, instant runner)\n")
    print(f"| {'phase':<22} | {'calls/exp':>9} | {'mean ms':>8} | {'p95 ms':>8} | {'ms/exp':>8} |")
    print(f"|{'-' * 24}|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    n = args.experiments
    for phase, samples in sorted(TIMES.items(), key=lambda item: -sum(item[1])):
        ms = [s * 1000 for s in samples]
        p95 = sorted(ms)[max(0, int(len(ms) * 0.95) - 1)]
        per_exp = sum(ms) / n if phase != "whole experiment" else statistics.mean(ms)
        print(f"| {phase:<22} | {len(ms) / n:>9.1f} | {statistics.mean(ms):>8.1f} | {p95:>8.1f} | {per_exp:>8.1f} |")


if __name__ == "__main__":
    main()
