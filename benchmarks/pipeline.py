"""Does the GPU wait for the proposer? Runner idle time between jobs, with and without pipelining.

The real loop (real git repository, validation, ledger) with the Claude proposer on the real
`anthropic` SDK, pointed at the loopback Messages API (tests/anthropic_api) that answers each
request after D seconds; the runner is a stand-in whose jobs take J seconds (it sleeps).
Idle time = from one job's end to the next job's start: proposal wait, validation, commit,
ledger and decision. Without pipelining the proposal is asked for only after the decision;
with it, while the previous job runs. Keeps and discards alternate, so half the prepared
proposals must be moved onto a new head.

    python benchmarks/pipeline.py                 # the table in benchmarks/results/pipeline.md
    python benchmarks/pipeline.py --experiments 5 # quicker
"""

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import anthropic  # noqa: E402
from anthropic_api.server import FakeAnthropic, tool_use  # noqa: E402
from conftest import TOY_TRAIN, make_repo  # noqa: E402

from bot.config import parse_config  # noqa: E402
from bot.gitops import GitRepo  # noqa: E402
from bot.ledger import Ledger  # noqa: E402
from bot.loop import ResearchLoop  # noqa: E402
from bot.proposers.anthropic import AnthropicProposer  # noqa: E402
from bot.proposers.offline import OfflineProposer  # noqa: E402
from bot.runners import RunResult  # noqa: E402
from standins import SleepingHandle  # noqa: E402


class SleepingRunner:
    """Jobs of `seconds`; the metric falls on every other job, so keeps and discards alternate."""
    name = "sleeping"

    def __init__(self, seconds):
        self.seconds, self.spans, self.count = seconds, [], 0

    def submit(self, experiment):
        self.count += 1
        metric = 3.0 - 0.01 * (self.count // 2) if self.count % 2 == 0 else 3.5
        result = RunResult(status="ok", metric=metric, summary={"val_bpb": metric}, device="cpu",
                           timings={"total_s": self.seconds})
        return SleepingHandle(self.seconds, result, self.spans)


def answerer(delay):
    """A fresh constant per request, so every proposal applies on any head and is new."""
    lock, count = threading.Lock(), [0]

    def answer(request):
        with lock:
            count[0] += 1
            n = count[0]
        return tool_use({"description": f"add K{n}", "rationale": "benchmark",
                         "edits": [{"file": "train.py", "search": 'BEHAVIOUR = "ok"',
                                    "replace": f'BEHAVIOUR = "ok"\nK{n} = {n}'}]}, delay=delay)
    return answer


def measure(delay, job, experiments, pipelined):
    server = FakeAnthropic()
    server.start()
    server.default = answerer(delay)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            repo = make_repo(Path(tmp) / "repo", {"train.py": TOY_TRAIN.format(behaviour="ok")})
            config = parse_config({"harness": [], "decision_rule": "greedy", "replicates": 1, "budget_seconds": 1})
            client = anthropic.Anthropic(api_key="bench", base_url=server.url, max_retries=0)
            proposer = AnthropicProposer(client, OfflineProposer(), editable=config.editable)
            proposer.prefetch = pipelined
            runner = SleepingRunner(job)
            loop = ResearchLoop(config, GitRepo(repo), runner, proposer, Ledger(Path(tmp) / "ledger"))
            started = time.monotonic()
            loop.run(iterations=experiments)
            wall = time.monotonic() - started
            records = loop.ledger.read()
    finally:
        server.stop()
    spans = runner.spans[1:]  # from the baseline's end on
    gaps = [b[0] - a[1] for a, b in zip(runner.spans, spans)]
    rebased = sum(1 for r in records if (r.get("proposal") or {}).get("rebased_from"))
    return {"idle_mean": sum(gaps) / len(gaps), "idle_max": max(gaps), "wall": wall, "runs": len(runner.spans),
            "rebased": rebased, "requests": len(server.requests)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--cases", default="0.5:1.5,2.0:1.0", help="D:J pairs (proposer delay : job seconds)")
    args = parser.parse_args()
    rows = []
    for case in args.cases.split(","):
        delay, job = (float(x) for x in case.split(":"))
        for pipelined in (False, True):
            result = measure(delay, job, args.experiments, pipelined)
            rows.append((delay, job, pipelined, result))
            print(f"D={delay:g} s J={job:g} s pipelining={'on' if pipelined else 'off'}: idle "
                  f"{result['idle_mean']:.2f} s mean, {result['idle_max']:.2f} s max", file=sys.stderr)
    print(f"{args.experiments} experiments per row; idle = runner idle between consecutive jobs\n")
    print("| proposer delay D | job J | pipelining | idle per experiment (mean) | idle (max) | wall | "
          "prepared proposals moved to a new head | API requests |")
    print("|---|---|---|---|---|---|---|---|")
    for delay, job, pipelined, r in rows:
        print(f"| {delay:g} s | {job:g} s | {'on' if pipelined else 'off'} | {r['idle_mean']:.2f} s | "
              f"{r['idle_max']:.2f} s | {r['wall']:.1f} s | {r['rebased']} | {r['requests']} |")


if __name__ == "__main__":
    main()
