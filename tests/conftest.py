"""Shared fixtures: real throwaway git repositories and the real loop wired to them."""

import subprocess
import textwrap
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.gitops import GitRepo
from bot.ledger import Ledger
from bot.loop import ResearchLoop
from bot.proposers.offline import OfflineProposer
from bot.runners.local import LocalRunner

REPO_ROOT = Path(__file__).resolve().parent.parent

# A stand-in for train.py that runs in a fraction of a second: its "val_bpb" is a smooth
# function of its constants, so proposals make real keeps and discards. BEHAVIOUR picks a
# failure mode for the bad-input tests once any constant has moved off its start value.
TOY_TRAIN = textwrap.dedent('''\
    import os, sys, time
    LR = 0.04  # learning rate
    WIDTH = 64  # model width
    BEHAVIOUR = "{behaviour}"
    moved = (LR, WIDTH) != (0.04, 64)
    print("env-check GITHUB_TOKEN present:", "GITHUB_TOKEN" in os.environ, flush=True)
    print("seed", os.environ.get("AUTORESEARCH_SEED"), "budget", os.environ.get("AUTORESEARCH_BUDGET_SECONDS"))
    if BEHAVIOUR == "import-error":
        import no_such_module_for_the_toy
    if moved and BEHAVIOUR == "crash":
        raise RuntimeError("toy crash: WIDTH does not fit")
    if moved and BEHAVIOUR == "hang":
        time.sleep(3600)
    if moved and BEHAVIOUR == "silent":
        sys.exit(0)
    for step in range(3):
        print(f"step {{step:05d}} ({{(step + 1) / 3 * 100:.1f}}%) | loss: 1.0", flush=True)
    value = abs(LR - 0.09) * 10 + abs(WIDTH - 100) / 1000 + 3
    print("---")
    print(f"val_bpb:          {{value:.6f}}")
    print("training_seconds: 0.1")
    print("peak_vram_mb:     0.0")
    print("device:           cpu")
''')


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path, files):
    """A real git repository at `path` with `files` ({name: text}) committed on main."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test Person")
    git(path, "config", "user.email", "test@example.com")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "start")
    return path


@pytest.fixture
def toy_repo(tmp_path):
    def build(behaviour="ok", extra=None):
        files = {"train.py": TOY_TRAIN.format(behaviour=behaviour), **(extra or {})}
        return make_repo(tmp_path / "repo", files)
    return build


class LoopRun:
    """The real loop on a real repository, with every event recorded."""

    def __init__(self, repo, **settings):
        settings.setdefault("budget_seconds", 1)
        settings.setdefault("timeout_seconds", 30)
        settings.setdefault("harness", [])
        self.config = parse_config(settings)
        self.repo = Path(repo)
        self.events = []
        self.ledger = Ledger(self.repo / ".autoresearch" / self.config.tag, self.config.metric)
        self.git = GitRepo(repo)

    def loop(self, runner=None, clock=None):
        extra = {"clock": clock} if clock else {}
        runner = runner or LocalRunner(isolation=self.config.isolation)
        return ResearchLoop(self.config, self.git, runner, OfflineProposer(self.config.seed),
                            self.ledger, events=lambda kind, **facts: self.events.append((kind, facts)), **extra)

    def run(self, iterations=None, hours=None, **kwargs):
        return self.loop(**kwargs).run(iterations=iterations, hours=hours)

    def kinds(self):
        return [kind for kind, _ in self.events]

    def records(self):
        return self.ledger.read()


@pytest.fixture(autouse=True)
def _no_real_github(monkeypatch):
    """A CI job's GITHUB_TOKEN/GITHUB_REPOSITORY must never switch a test to the real GitHub."""
    for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_API_URL", "GITHUB_SERVER_URL", "GITHUB_EVENT_PATH"):
        monkeypatch.delenv(name, raising=False)


# ---- GitHub mode: a loopback GitHub on a real bare repository (tests/github_api/) ----------

class GitHubWorld:
    """A clone with `origin` at a bare repository that a loopback GitHub serves as octo/night."""

    def __init__(self, tmp_path, behaviour="ok"):
        from github_api.server import FakeGitHub

        files = {"train.py": TOY_TRAIN.format(behaviour=behaviour),
                 "autoresearch.yaml": ("budget_seconds: 1\ntimeout_seconds: 30\nharness: []\n"
                                      "decision_rule: greedy\nreplicates: 1\n")}  # GitHub behaviour, not the rule
        self.work = make_repo(tmp_path / "work", files)
        self.bare = tmp_path / "bare.git"
        git(tmp_path, "clone", "-q", "--bare", str(self.work), str(self.bare))
        git(self.work, "remote", "add", "origin", str(self.bare))
        self.server = FakeGitHub(self.bare)
        self.url = self.server.start()
        self.env = {"GITHUB_TOKEN": "test-token", "GITHUB_API_URL": self.url, "GITHUB_REPOSITORY": "octo/night"}

    def bot(self, *args, env=None):
        from click.testing import CliRunner

        from bot.cli import cli

        return CliRunner().invoke(cli, [*args, "--repo", str(self.work)], env={**self.env, **(env or {})},
                                  catch_exceptions=False)

    def run(self, iterations, *extra, env=None):
        return self.bot("run", "--local", "--iterations", str(iterations), "--writes-per-minute", "0", *extra, env=env)

    def bare_sha(self, branch):
        out = subprocess.run(["git", "-C", str(self.bare), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                             capture_output=True, text=True).stdout.strip()
        return out or None

    def bare_file(self, branch, path):
        return git(self.bare, "show", f"refs/heads/{branch}:{path}")


@pytest.fixture
def night(github_world):
    """A two-experiment night on the loopback GitHub, and its discarded experiment PRs."""
    assert github_world.run(2).exit_code == 0
    server = github_world.server
    return github_world, [n for n, p in server.pulls.items()
                          if p["head"].startswith("autoresearch/default-exp/") and "discarded" in server.issue_labels[n]]


def ledger_rows(world):
    """The rows on the ledger branch of the loopback's bare repository."""
    import json

    return [json.loads(x) for x in world.bare_file("autoresearch/default-ledger", "experiments.jsonl").splitlines()]


CONTRACT_TOTALS = {"validated": __import__("collections").Counter(), "deviations": __import__("collections").Counter()}


@pytest.fixture
def github_world(tmp_path):
    world = GitHubWorld(tmp_path)
    yield world
    world.server.stop()
    CONTRACT_TOTALS["validated"].update(world.server.contract.validated)
    CONTRACT_TOTALS["deviations"].update(world.server.contract.deviations)
    assert world.server.contract.violations == [], world.server.contract.violations


def pytest_terminal_summary(terminalreporter):
    validated = CONTRACT_TOTALS["validated"]
    if validated:
        from github_api.contract import Contract

        total = len({op["operationId"] for ops in Contract().document["paths"].values() for op in ops.values()})
        terminalreporter.write_line(
            f"GitHub contract: {sum(validated.values())} request/response pairs validated over "
            f"{len(validated)} of {total} pinned operations; allowlisted deviations used: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(CONTRACT_TOTALS["deviations"].items())))


class ScriptedRunner:
    """Answers each submitted run with the next scripted metric (None: the run crashes) and
    records the seeds it was given: decision sequences without training anything."""

    name = "scripted"

    def __init__(self, metrics):
        self.metrics = list(metrics)
        self.seeds = []

    def submit(self, experiment):
        from bot.runners import FinishedHandle, RunResult

        self.seeds.append(experiment.seed)
        if not self.metrics:
            raise AssertionError("the loop asked for more runs than the test scripted")
        value = self.metrics.pop(0)
        result = (RunResult(status="ok", metric=value, summary={"val_bpb": value}, device="cpu",
                            timings={"total_s": 1.0})
                  if value is not None else
                  RunResult(status="crash", reason="exited with code 1", device="cpu", timings={"total_s": 1.0}))
        return FinishedHandle(result)


# ---- Anthropic: a loopback Messages API (tests/anthropic_api/) ------------------------------

@pytest.fixture
def anthropic_server():
    """A started FakeAnthropic (`.url` for `anthropic.Anthropic(base_url=...)`); at teardown it is
    stopped and must have seen no violation (a malformed request, a malformed scripted reply, an
    unscripted request)."""
    from anthropic_api.server import FakeAnthropic

    server = FakeAnthropic()
    server.start()
    yield server
    server.stop()
    assert server.violations == [], server.violations


@pytest.fixture
def clean_harness_env(monkeypatch, tmp_path):
    """No AUTORESEARCH_* from the outside; a private cache; no corpus remembered between tests."""
    import prepare

    for name in ("BUDGET_SECONDS", "SEED", "TRAIN_DATA", "HANDOFF", "DATA", "CACHE_DIR"):
        monkeypatch.delenv(f"AUTORESEARCH_{name}", raising=False)
    monkeypatch.setenv("AUTORESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(prepare, "_CORPORA", {})
