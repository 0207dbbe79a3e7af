"""`bot run --parallel N`: batches on one head, the stacking rule, ids, limits, Ctrl-C; with a
scripted runner whose runs sleep (so they really overlap), and once for real through the CLI."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TOY_TRAIN, git, make_repo

from bot.config import parse_config
from bot.errors import ProposalError
from bot.gitops import GitRepo
from bot.ledger import Ledger
from bot.loop import Interrupted, ResearchLoop
from bot.parallel import BatchLoop
from bot.proposal import Proposal
from bot.proposers.offline import OfflineProposer
from bot.runners import RunResult

TRAIN = "".join(f"{name} = 1\n" for name in "ABCDE") + "print('---')\n"


class SleepingHandle:
    def __init__(self, runner, experiment, result, seconds):
        self.cancelled = threading.Event()
        self._done = threading.Event()

        def work():
            started = time.monotonic()
            self.cancelled.wait(seconds)
            runner.spans.append((experiment.id, started, time.monotonic()))
            self._done.set()
        self._result = result
        threading.Thread(target=work, daemon=True).start()

    def result(self, timeout=None):
        if not self._done.wait(timeout):
            return None
        return RunResult(status="cancelled", reason="cancelled") if self.cancelled.is_set() else self._result

    def cancel(self):
        self.cancelled.set()
        self._done.wait(5)


class SleepingRunner:
    """Each run sleeps `seconds` (or `durations[(name, value)]` of a constant it moved); its metric
    is 3.0 plus the `effects` of the constants its train.py moved ({(name, value): delta}; a delta
    of None crashes the run), plus `noise` × (seed mod 3). Every run costs `cost` dollars."""
    name = "sleeping"

    def __init__(self, effects, seconds=0.3, durations=None, noise=0.0, cost=0.0):
        self.effects, self.seconds, self.durations = effects, seconds, durations or {}
        self.noise, self.cost = noise, cost
        self.spans, self.submitted, self.handles = [], [], []

    def submit(self, experiment):
        text = (Path(experiment.source_dir) / "train.py").read_text()
        moved = [pair for pair in re.findall(r"^([A-Z_]+) = (\S+)$", text, re.MULTILINE) if pair[1] != "1"]
        deltas = [self.effects.get(pair, 0.0) for pair in moved]
        seconds = max([self.durations.get(pair, self.seconds) for pair in moved], default=self.seconds)
        if None in deltas:
            result = RunResult(status="crash", reason="exited with code 1", device="cpu", timings={"total_s": 1.0},
                               cost_usd=self.cost)
        else:
            metric = 3.0 + sum(deltas) + self.noise * (experiment.seed % 3)
            result = RunResult(status="ok", metric=metric, summary={"val_bpb": metric}, device="cpu",
                               timings={"total_s": seconds}, cost_usd=self.cost)
        self.submitted.append(experiment)
        handle = SleepingHandle(self, experiment, result, seconds)
        self.handles.append(handle)
        return handle


class ScriptedProposer:
    """Proposes the listed changes (NAME, value) in order, skipping those it is told to avoid."""
    name = "scripted"

    def __init__(self, changes):
        self.changes, self.asked = list(changes), []

    def propose(self, base_files, history, device=None, experiment_id=0, avoid=(), base_commit=None):
        self.asked.append((experiment_id, base_commit))
        while self.changes:
            name, value = self.changes.pop(0)
            if (name, value) not in set(avoid):
                text = re.sub(rf"^{name} = \S+$", f"{name} = {value}", base_files["train.py"], flags=re.MULTILINE)
                return Proposal(f"{name} 1 -> {value}", "scripted", {"train.py": text},
                                change={"file": "train.py", "name": name, "old": "1", "new": value})
        raise ProposalError("the script is out of changes")


def batch_run(tmp_path, changes, effects, n=2, seconds=0.3, proposer=None, train=TRAIN, durations=None, noise=0.0,
              cost=0.0, **settings):
    repo = make_repo(tmp_path / "repo", {"train.py": train})
    settings = {"harness": [], "decision_rule": "greedy", "replicates": 1, "budget_seconds": 1, **settings}
    config = parse_config(settings)
    runner = SleepingRunner(effects, seconds, durations, noise, cost)
    events = []
    loop = ResearchLoop(config, GitRepo(repo), runner, proposer or ScriptedProposer(changes),
                        Ledger(repo / ".autoresearch" / config.tag), events=lambda kind, **f: events.append((kind, f)))
    return repo, BatchLoop(loop, n), runner, events


def file_at(repo, commit):
    return git(repo, "show", f"{commit}:train.py")


# ---- the stacking rule --------------------------------------------------------------------

@pytest.mark.parametrize("changes, effects, iterations, statuses, head, reapplied", [
    # none improves: the head stays the baseline
    ([("C", "2"), ("E", "2")], {("C", "2"): 0.1, ("E", "2"): 0.2}, 2, ["discard", "discard"], 0, {}),
    # one improves: it is kept
    ([("A", "2"), ("C", "2")], {("A", "2"): -0.2, ("C", "2"): 0.1}, 2, ["keep", "discard"], 1, {}),
    # two improve: the best is kept; the other, re-applied on it, is measured again and kept too
    ([("A", "2"), ("B", "2")], {("A", "2"): -0.2, ("B", "2"): -0.1}, 3, ["keep", "discard", "keep"], 3, {3: 2}),
    # the better one second: ids do not decide, metrics do
    ([("B", "2"), ("A", "2")], {("A", "2"): -0.2, ("B", "2"): -0.1}, 3, ["discard", "keep", "keep"], 3, {3: 1}),
    # two improve, but the second changes the same line: it no longer applies and is dropped
    ([("A", "2"), ("A", "3"), ("C", "2")], {("A", "2"): -0.2, ("A", "3"): -0.1, ("C", "2"): 0.1}, 3,
     ["keep", "discard", "discard"], 1, {}),
    # a crash in the batch is a crash row; the other result stands
    ([("A", "2"), ("D", "2")], {("A", "2"): -0.2, ("D", "2"): None}, 2, ["keep", "crash"], 1, {}),
], ids=["none-improves", "one-improves", "two-improve", "two-improve-best-second", "reapplied-conflicts", "crash"])
def test_stacking_rule(tmp_path, changes, effects, iterations, statuses, head, reapplied):
    repo, batch, runner, _ = batch_run(tmp_path, changes, effects)
    outcome = batch.run(iterations=iterations)
    records = batch.loop.ledger.read()
    assert [r["status"] for r in records[1:]] == statuses
    assert outcome["experiments"] == iterations
    assert git(repo, "rev-parse", "autoresearch/default") == records[head]["commit"]
    assert {r["id"]: r["reapplied_from"] for r in records if "reapplied_from" in r} == reapplied
    first = [span for span in runner.spans if span[0] in (1, 2)]
    assert max(start for _, start, _ in first) < min(end for _, _, end in first)  # trained at once
    keeps = [r for r in records[1:3] if r["status"] == "keep"]
    for record in records[1:3]:  # the first batch: both on the baseline
        assert record["parent"] == records[0]["commit"]
        if record["status"] == "discard" and (record.get("evidence") or {}).get("superseded_by") is not None:
            assert record["evidence"]["superseded_by"] == keeps[0]["id"]
            assert f"{keeps[0]['id']:04d} ({keeps[0]['description']}) was better" in record["reason"]
    for new, old in reapplied.items():  # measured on the winner's commit, with both changes in it
        winner = records[1 if old == 2 else 2]
        assert records[new]["parent"] == winner["commit"]
        assert records[new]["description"] == records[old]["description"]
        text = file_at(repo, records[new]["commit"])
        assert "A = 2" in text and "B = 2" in text
        assert records[new]["metric"] == pytest.approx(2.7)
        assert "re-applied on the new head" in records[old]["reason"]


def test_a_superseded_change_that_no_longer_applies_says_so(tmp_path):
    changes = [("A", "2"), ("A", "3")]
    _, batch, _, _ = batch_run(tmp_path, changes, {("A", "2"): -0.2, ("A", "3"): -0.1})
    batch.run(iterations=2)
    loser = batch.loop.ledger.read()[2]
    assert loser["status"] == "discard" and loser["evidence"]["requeued"] is False
    assert "its change is dropped: it no longer applies on the new head" in loser["reason"]


def test_a_stop_before_the_superseded_change_is_measured_is_a_warning(tmp_path):
    _, batch, _, events = batch_run(tmp_path, [("A", "2"), ("B", "2")], {("A", "2"): -0.2, ("B", "2"): -0.1})
    batch.run(iterations=2)
    warnings = [f["message"] for kind, f in events if kind == "warning"]
    assert any("not re-evaluated on the new head" in w and "0002 B 1 -> 2" in w for w in warnings)


# ---- batches: distinct proposals, ids, branches, overlap, limits ---------------------------

def test_a_batch_is_distinct_proposals_on_one_head_with_their_own_ids_branches_and_runs(tmp_path):
    toy = TOY_TRAIN.format(behaviour="ok")
    effects = {}
    _, batch, runner, _ = batch_run(tmp_path, None, effects, n=4, proposer=OfflineProposer(42), train=toy)
    repo = Path(batch.loop.git.root)
    batch.run(iterations=4)
    records = batch.loop.ledger.read()
    assert [r["id"] for r in records] == [0, 1, 2, 3, 4]
    assert len({r["diff_hash"] for r in records[1:]}) == 4
    assert len({r["description"] for r in records[1:]}) == 4
    assert {r["parent"] for r in records[1:]} == {records[0]["commit"]}
    for record in records[1:]:
        assert record["branch"] == f"autoresearch/default-exp/{record['id']:04d}"
        assert git(repo, "rev-parse", record["branch"]) == record["commit"]
        assert record["log_path"].endswith(f"{record['id']:04d}.log")
    runs = runner.submitted[1:]  # after the baseline
    assert len({e.work_dir for e in runs}) == 4 and len({e.log_path for e in runs}) == 4
    spans = [s for s in runner.spans if s[0] != 0]
    assert max(start for _, start, _ in spans) < min(end for _, _, end in spans)  # all four at once


class SlowProposer:
    """Answers after `delay` seconds, asked from several threads at once (as the Claude proposer is);
    its first two answers are the same change, as two models asked at once may give."""
    name, prefetch = "slow", True

    def __init__(self, delay=0.3):
        self.delay, self.lock, self.count, self.busy, self.peak, self.running = delay, threading.Lock(), 0, 0, 0, []

    def propose(self, base_files, history, device=None, experiment_id=0, avoid=(), base_commit=None, running=()):
        with self.lock:
            self.count, self.busy = self.count + 1, self.busy + 1
            n, self.peak = self.count, max(self.peak, self.busy)
            self.running.append(tuple(running))
        time.sleep(self.delay)
        with self.lock:
            self.busy -= 1
        name = "ABCE"[(n - 1) % 4]
        text = re.sub(rf"^{name} = \S+$", f"{name} = {n + 1}", base_files["train.py"], flags=re.MULTILINE)
        if n == 2:  # the same change as the first answer
            text = re.sub(r"^A = \S+$", "A = 2", base_files["train.py"], flags=re.MULTILINE)
        return Proposal(f"{name} 1 -> {n + 1}" if n != 2 else "A 1 -> 2", "slow", {"train.py": text})


def test_a_slow_proposer_is_asked_for_a_whole_batch_at_once_and_a_duplicate_is_asked_again(tmp_path):
    proposer = SlowProposer()
    _, batch, _, events = batch_run(tmp_path, None, {}, n=4, proposer=proposer, seconds=0.5)
    batch.run(iterations=8)
    records = batch.loop.ledger.read()
    assert proposer.peak == 4  # four questions in flight together (while the baseline, then a batch, trained)
    for first in (1, 5):
        assert len({r["diff_hash"] for r in records[first:first + 4]}) == 4
    refused = [f for kind, f in events if kind == "proposal-refused"]
    assert refused and "A 1 -> 2" == refused[0]["description"]
    assert any("A 1 -> 2" in running for running in proposer.running)  # the re-ask was told what runs beside it
    waits = [r["proposal"]["wait_s"] for r in records[5:9]]
    assert max(waits) < 0.3  # the second batch's proposals were ready when it formed


@pytest.mark.parametrize("n, iterations, batches", [(2, 4, [2, 2]), (2, 3, [2, 1]), (3, 4, [3, 1]), (4, 2, [2])])
def test_iterations_count_experiments_not_batches(tmp_path, n, iterations, batches):
    changes = [(name, str(v)) for v in (2, 3, 4) for name in "ABCE"]
    _, batch, _, _ = batch_run(tmp_path, changes, {}, n=n, seconds=0.05)
    sizes, run_batch = [], batch.run_batch
    batch.run_batch = lambda candidates, *rest: (sizes.append(len(candidates)), run_batch(candidates, *rest))[1]
    outcome = batch.run(iterations=iterations)
    records = batch.loop.ledger.read()
    assert outcome["experiments"] == iterations == len(records) - 1
    assert outcome["stop_reason"] == f"finished {iterations} experiment(s)"
    assert sizes == batches
    assert [r["id"] for r in records] == list(range(iterations + 1))


def test_consecutive_crashes_stop_the_run_counted_in_id_order(tmp_path):
    changes = [(name, "2") for name in "ABCE"] + [("A", "3")]
    effects = {(name, "2"): None for name in "ABCE"}
    _, batch, _, _ = batch_run(tmp_path, changes, effects, n=2, max_consecutive_crashes=3)
    outcome = batch.run(iterations=10)
    assert outcome["experiments"] == 4  # the third crash in a row came with the second batch
    assert outcome["stop_reason"].startswith("stopped after 3 consecutive crashes; the last, 0003 (C 1 -> 2)")


def test_max_usd_shrinks_a_batch_to_what_it_can_pay_for(tmp_path):
    changes = [(name, "2") for name in "ABCE"]
    _, batch, _, _ = batch_run(tmp_path, changes, {}, n=2, cost=0.3, max_usd=1.25)
    sizes, run_batch = [], batch.run_batch
    batch.run_batch = lambda candidates, *rest: (sizes.append(len(candidates)), run_batch(candidates, *rest))[1]
    outcome = batch.run(iterations=10)
    # baseline $0.30 + a batch of 2 = $0.90; two more ($1.50) would pass $1.25, one more ($1.20) does not
    assert sizes == [2, 1]
    assert outcome["experiments"] == 3 and outcome["stop_reason"].startswith("max_usd reached: $1.20 spent")


def test_the_hours_limit_is_checked_before_each_batch(tmp_path):
    changes = [(name, str(v)) for v in (2, 3) for name in "ABCE"]
    _, batch, _, _ = batch_run(tmp_path, changes, {}, n=2, seconds=0.4)
    outcome = batch.run(hours=0.6 / 3600)  # the baseline (0.4 s), then one batch: past 0.6 s
    assert outcome["stop_reason"].startswith("the 0.000166667 h limit passed after 2 experiment(s)")
    assert outcome["experiments"] == 2


def test_noise_aware_replicates_of_one_candidate_run_while_the_others_train(tmp_path):
    # A is clearly better: kept on its first run, then topped up to `replicates` runs, while the
    # slow B (clearly worse) is still training
    _, batch, runner, _ = batch_run(tmp_path, [("A", "2"), ("B", "2")], {("A", "2"): -0.5, ("B", "2"): 0.5},
                                    seconds=0.2, durations={("B", "2"): 1.5}, noise=0.01,
                                    decision_rule="noise-aware", replicates=2)
    batch.run(iterations=2)
    records = batch.loop.ledger.read()
    assert records[1]["status"] == "keep" and len(records[1]["replicates"]) == 2
    assert records[2]["status"] == "discard" and len(records[2]["replicates"]) == 1
    a_runs = sorted(start for exp_id, start, _ in runner.spans if exp_id == 1)
    b_end = next(end for exp_id, _, end in runner.spans if exp_id == 2)
    assert len(a_runs) == 2 and a_runs[1] < b_end


def test_ctrl_c_cancels_every_running_experiment_and_records_none(tmp_path):
    changes = [(name, "2") for name in "ABC"]
    repo, batch, runner, _ = batch_run(tmp_path, changes, {}, n=3, seconds=0.05,
                                       durations={(name, "2"): 30 for name in "ABC"})

    def interrupt():
        while len(runner.submitted) < 4:  # the baseline, then the batch of three
            time.sleep(0.02)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(Interrupted, match="0001, 0002, 0003 were stopped and not recorded"):
        batch.run(iterations=3)
    assert time.monotonic() - started < 10
    assert all(h.cancelled.is_set() for h in runner.handles[1:])
    assert [r["id"] for r in batch.loop.ledger.read()] == [0]
    assert git(repo, "branch", "--list", "autoresearch/default-exp/*") == ""


# ---- for real: the CLI, the real train.py, two trainings at once ---------------------------

def test_bot_run_parallel_2_trains_two_at_once_for_real(tmp_path):
    repo = make_repo(tmp_path / "repo", {name: (REPO_ROOT / name).read_text()
                                         for name in ("train.py", "prepare.py", "autoresearch.yaml")})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "AUTORESEARCH_"))}
    # one run per experiment and a generous start-up allowance: this checks scheduling, not noise
    env.update(AUTORESEARCH_DECISION_RULE="greedy", AUTORESEARCH_REPLICATES="1", AUTORESEARCH_STARTUP_SECONDS="60",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", "bot", "run", "--parallel", "2", "--local", "--iterations", "4",
                             "--budget", "2"], cwd=repo, env=env, capture_output=True, text=True, timeout=540, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Stopped: finished 4 experiment(s)" in result.stdout and "(2 experiments at once)" in result.stdout
    assert all(f"  -> {i:04d} " in result.stdout for i in (1, 2, 3, 4))  # results name their experiment
    records = Ledger(repo / ".autoresearch" / "default").read()
    assert [r["kind"] for r in records] == ["baseline"] + ["experiment"] * 4
    # a proposal may crash for real (e.g. a batch size the budget cannot fit); none may be lost
    assert all(r["status"] in ("keep", "discard", "crash") for r in records), [r["reason"] for r in records]
    assert records[0]["status"] == "keep" and records[1]["parent"] == records[2]["parent"] == records[0]["commit"]
    logs = repo / ".autoresearch" / "default" / "logs"
    for pair in (records[1:3], records[3:5]):  # a run's log is last written as it ends
        spans = [((logs / f"{r['id']:04d}.log").stat().st_mtime - r["timings"]["total_s"],
                  (logs / f"{r['id']:04d}.log").stat().st_mtime) for r in pair]
        assert max(s for s, _ in spans) < min(e for _, e in spans) - 1, spans  # the two trainings overlapped
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


# ---- GitHub mode: a PR per experiment, written in id order, winners merged ------------------

def test_github_mode_opens_a_pr_per_experiment_in_id_order_and_merges_only_the_batch_winner(github_world):
    import json

    result = github_world.run(4, "--parallel", "2")
    assert result.exit_code == 0, result.output
    server = github_world.server
    rows = [json.loads(x) for x in github_world.bare_file("autoresearch/default-ledger", "experiments.jsonl").splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2, 3, 4]
    opened = [b["head"] for m, p, b, _ in server.requests
              if m == "POST" and p.endswith("/pulls") and b["head"].startswith("autoresearch/default-exp/")]
    assert opened == [f"autoresearch/default-exp/{i:04d}" for i in (1, 2, 3, 4)]  # in id order
    prs = {p["head"]: p for p in server.pulls.values()}
    for row in rows[1:]:
        pr = prs[row["branch"]]
        assert row["pr"] == pr["number"] and pr["merged"] == (row["status"] == "keep") and pr["state"] == "closed"
    kept = [r for r in rows[1:] if r["status"] == "keep"]
    assert github_world.bare_sha("autoresearch/default") == (kept[-1]["commit"] if kept else rows[0]["commit"])
    for pair in (rows[1:3], rows[3:5]):
        assert len({r["parent"] for r in pair}) == 1 and sum(r["status"] == "keep" for r in pair) <= 1


def test_sigterm_of_a_parallel_run_kills_every_training_and_records_none(tmp_path):
    from test_newcomer import _processes_under

    settings = "budget_seconds: 1\ntimeout_seconds: 60\nharness: []\ndecision_rule: greedy\nreplicates: 1\n"
    repo = make_repo(tmp_path / "repo", {"train.py": TOY_TRAIN.format(behaviour="hang"), "autoresearch.yaml": settings})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "AUTORESEARCH_"))}
    env.update(TMPDIR=str(scratch), PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    process = subprocess.Popen([sys.executable, "-m", "bot", "run", "--local", "--parallel", "2", "--iterations", "4",
                                "--repo", str(repo)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        logs = [repo / ".autoresearch" / "default" / "logs" / f"000{i}.log" for i in (1, 2)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(p.exists() and "budget" in p.read_text() for p in logs):
            time.sleep(0.2)  # both experiments of the first batch (which hang once a constant moved) train
        assert all(p.exists() for p in logs), "the batch never started"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "experiment(s) 0001, 0002 were stopped and not recorded" in output
    time.sleep(0.5)
    assert _processes_under(scratch) == []  # nothing left running
    assert [r["id"] for r in Ledger(repo / ".autoresearch" / "default").read()] == [0]
    assert git(repo, "branch", "--list", "autoresearch/default-exp/*") == ""
