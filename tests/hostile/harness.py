"""The world a hostile case runs in, running it through the real job, and judging the outcome.

A `World` holds, per case: fresh fake secrets in the environment handed to `run_job`, a fake
HOME with credential files, a real `git init` user repository with a tracking ref and a ledger,
a TCP server and two Unix-socket servers that record whatever reaches them, and host paths that
must never appear. The data cache is shared by a session (the first run prepares the splits).

`judge` returns the problems of one outcome (an empty list: the attack got nothing) and a
verdict: refused (the job or the harness said no), crashed (the attack's own code failed),
no-gain (scored, and no better than an honest run), ACCEPTED (scored better than it may).
"""

import base64
import dataclasses
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import site
import socket
import string
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.github.messages import parse_marker, pr_body  # noqa: E402
from gpu_jobs.job import JobSpec, run_job  # noqa: E402

from .cases import build_source  # noqa: E402

BOUND = 3.0  # honest 1-2 s CPU runs score 3.7 (the tiny bigram) to 8 (train.py's 2 steps)
HONEST_MARGIN = 0.05  # cases built on the deterministic honest bigram: no gain beyond float noise
BUDGET_MARGIN = 0.5  # a budget overrun that still finishes: no more than this better than honest
REFUSAL_PATTERNS = (r"non-causal", r"did not hand its model", r"not a graph", r"wrong magic", r"ran past its budget",
                    r"not a plain file", r"could not be opened safely", r"harness check failed",
                    r"not a finite number", r"not (all )?finite", r"refused")


def _random(n, alphabet=string.ascii_letters + string.digits):
    return "".join(secrets.choice(alphabet) for _ in range(n))


def sha256_of(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Recorder:
    """A server that records every connection and byte reaching it (there must be none)."""

    def __init__(self, family, address):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.connections, self.received = 0, b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(1.0)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass
            conn.close()

    def stop(self):
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass

    def close(self):
        self.stop()
        self._thread.join(timeout=2)
        self.sock.close()


class World:
    """Everything one case may attack, created fresh (with new random secrets) per case."""

    def __init__(self, base, cache_dir, prepare_bytes=None):
        # The harness under test, read once per session: prepare.py may be edited while a session
        # runs, and every case (and its split cache key) must see the same bytes.
        self.prepare_bytes = prepare_bytes if prepare_bytes is not None else (ROOT / "prepare.py").read_bytes()
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Path(cache_dir)
        self.home = self.base / "home"
        self.repo = self.base / "user-repo"
        self.src = self.base / "src"
        self.log_path = self.base / "run.log"
        self.host_file = self.base / "host-daemon.log"  # a daemon's host path: must never exist
        self.marker = self.base / "pickle-ran.marker"  # a pickle payload's proof: must never exist
        self.unix_path = self.base / "host.sock"
        pw = _random(24)
        self.env_secrets = {
            "GITHUB_TOKEN": "ghp_" + _random(36),
            "ANTHROPIC_API_KEY": "sk-ant-api03-" + _random(40, string.ascii_letters + string.digits + "_-"),
            "MODAL_TOKEN_SECRET": "as-" + _random(30),
            "DATABASE_URL": f"postgres://bot:{pw}@db.internal:5432/prod",
            "PGPASSWORD": _random(28),
            "SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/T{_random(10)}/B{_random(10)}/{_random(24)}",
            "SERVICE_APIKEY": _random(32),
        }
        self.file_secrets = {"git-credentials token": "gho_" + _random(36), "modal token_secret": "as-" + _random(30)}
        self.values = sorted({*(v for v in self.env_secrets.values()), pw, *self.file_secrets.values(),
                              self.env_secrets["SLACK_WEBHOOK_URL"].rsplit("/", 1)[1]}, key=len, reverse=True)
        self._make_home()
        self._make_repo()
        self.tcp = Recorder(socket.AF_INET, ("127.0.0.1", 0))
        self.unix_name = "autoresearch-hostile-" + _random(12)
        self.abstract = Recorder(socket.AF_UNIX, "\0" + self.unix_name)
        self.pathname = Recorder(socket.AF_UNIX, str(self.unix_path))
        self.env = dict(os.environ, CUDA_VISIBLE_DEVICES="", HOME=str(self.home),
                        AUTORESEARCH_CACHE_DIR=str(self.cache_dir), **self.env_secrets)
        for name in ("AUTORESEARCH_DATA", "AUTORESEARCH_TRAIN_DATA", "AUTORESEARCH_HANDOFF", "AUTORESEARCH_SEED",
                     "AUTORESEARCH_BUDGET_SECONDS"):
            self.env.pop(name, None)

    def _make_home(self):
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / ".git-credentials").write_text(
            f"https://bot:{self.file_secrets['git-credentials token']}@github.com\n")
        (self.home / ".modal.toml").write_text(
            f'[default]\ntoken_id = "ak-{_random(20)}"\ntoken_secret = "{self.file_secrets["modal token_secret"]}"\n')
        (self.home / ".bashrc").write_text("# the bot's shell\n")

    def _make_repo(self):
        self.repo.mkdir(parents=True, exist_ok=True)
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "config", "user.name", "Test Person")
        git(self.repo, "config", "user.email", "test@example.com")
        (self.repo / "train.py").write_text("print('the user train.py')\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "start")
        git(self.repo, "branch", "autoresearch/default")
        ledger = self.repo / ".autoresearch" / "default"
        ledger.mkdir(parents=True)
        (ledger / "experiments.jsonl").write_text(json.dumps(
            {"id": 0, "kind": "baseline", "status": "keep", "metric": 7.9, "metric_name": "val_bpb"}) + "\n")

    def targets(self):
        """What a case gets told about the world: the real paths, formatted into its source."""
        return {"home": str(self.home), "repo": str(self.repo), "cache": str(self.cache_dir),
                "host_file": str(self.host_file), "marker": str(self.marker), "tcp_port": self.tcp.address[1],
                "unix_name": self.unix_name, "unix_path": str(self.unix_path),
                "site_packages": site.getsitepackages(), "user_site": site.getusersitepackages(),
                "stdlib": sysconfig.get_paths()["stdlib"]}

    def persistence_paths(self):
        """Everything whose bytes must be the same after the run as before."""
        roots = [self.home, self.repo / ".git", self.repo / ".autoresearch", self.cache_dir]
        extra = []
        for directory in {*site.getsitepackages(), site.getusersitepackages(), sysconfig.get_paths()["stdlib"],
                          sysconfig.get_paths()["purelib"]}:
            extra += glob.glob(os.path.join(directory, "*.pth"))
            extra += glob.glob(os.path.join(directory, "sitecustomize*")) + glob.glob(os.path.join(directory, "usercustomize*"))
        return roots, extra

    def snapshot(self):
        roots, extra = self.persistence_paths()
        files = {}
        for root in roots:
            for dirpath, _, names in os.walk(root):
                for name in names:
                    files[os.path.join(dirpath, name)] = None
        for path in extra:
            files[path] = None
        state = {}
        for path in files:
            try:
                info = os.lstat(path)
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if os.path.isfile(path) else "?"
                state[path] = (info.st_size, info.st_mtime_ns, info.st_mode, digest)
            except OSError as exc:
                state[path] = ("error", str(exc))
        # Names (not bytes) of the interpreter's site directories: a dropped .pth or package shows here.
        for directory in {*site.getsitepackages(), site.getusersitepackages()}:
            state[f"listing:{directory}"] = tuple(sorted(os.listdir(directory))) if os.path.isdir(directory) else None
        return state

    def close(self):
        for server in (self.tcp, self.abstract, self.pathname):
            server.stop()
        for server in (self.tcp, self.abstract, self.pathname):
            server.close()


@dataclasses.dataclass
class Outcome:
    case: object
    result: dict
    log: str
    body: str
    seconds: float
    before: dict
    after: dict
    after_checks: dict  # measured right after run_job returned (daemon file sizes...)
    problems: list = dataclasses.field(default_factory=list)
    verdict: str = ""


def ledger_record(result, name):
    """A minimal ledger row built from a job result, as bot/loop.py `_record` does."""
    status = "crash" if result["status"] != "ok" else "discard"
    return {"id": 1, "kind": "experiment", "commit": "0" * 40, "parent": "1" * 40, "branch": "autoresearch/exp-0001",
            "description": f"hostile case {name}", "rationale": "adversarial test", "change": None,
            "diff_hash": "0" * 16, "status": status, "reason": result.get("reason") or "measured",
            "evidence": {}, "metric_name": "val_bpb", "metric": result.get("metric") if status != "crash" else None,
            "metric_source": result.get("metric_source"), "flags": list(result.get("flags") or []),
            "summary": result.get("summary"), "memory_gb": round((result.get("peak_memory_mb") or 0) / 1024, 3),
            "run_status": result.get("status"), "exit_code": result.get("exit_code"), "runner": "local",
            "timings": result.get("timings"), "cost_usd": 0.0, "pr": None, "seed": 42, "replicates": [],
            "key": {"device": result.get("device")}, "finished_at": "2025-01-01T00:00:00+00:00",
            "isolation": result.get("isolation"), "log_tail": result.get("log_tail") if status == "crash" else "",
            "log_path": "/dev/null"}


def run_case(case, world, spec_defaults=None, source=None):
    """Write the case's train.py (or `source`) next to the real prepare.py and run it through the real job."""
    if world.src.exists():
        shutil.rmtree(world.src)
    world.src.mkdir(parents=True)
    (world.src / "prepare.py").write_bytes(world.prepare_bytes)
    (world.src / "train.py").write_text(source if source is not None else build_source(case, world.targets()))
    settings = dict(command="python train.py", budget_seconds=1.0, seed=42, data="stdlib", metric="val_bpb",
                    isolation="sandbox", startup_seconds=60.0)
    settings.update(spec_defaults or {})
    settings.update(case.spec)
    spec = JobSpec(source_dir=str(world.src), expected_harness={"prepare.py": sha256_of(world.src / "prepare.py")},
                   log_path=str(world.log_path), **settings)
    before = world.snapshot()
    started = time.monotonic()
    result = run_job(spec, environ=world.env)
    seconds = time.monotonic() - started
    after_checks = _after_checks(world)
    after = world.snapshot()
    log = world.log_path.read_text(errors="replace") if world.log_path.exists() else ""
    body = pr_body(ledger_record(result, case.name), None, log_tail=result.get("log_tail") or "")
    return Outcome(case, result, log, body, seconds, before, after, after_checks)


def _after_checks(world):
    """What only holds right after the job returned: a daemon's file must stop growing within 1 s."""
    daemon_file = world.src / "daemon.log"
    sizes = []
    if daemon_file.exists():
        sizes.append(daemon_file.stat().st_size)
        time.sleep(1.0)
        sizes.append(daemon_file.stat().st_size)
        time.sleep(0.5)
        sizes.append(daemon_file.stat().st_size)
    time.sleep(0.05)
    return {"daemon_sizes": sizes, "host_file": world.host_file.exists(), "marker": world.marker.exists(),
            "tcp": (world.tcp.connections, world.tcp.received), "abstract": (world.abstract.connections,
                                                                          world.abstract.received),
            "pathname": (world.pathname.connections, world.pathname.received)}


def secret_forms(value):
    raw = value.encode()
    return {value, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
            base64.b64encode(raw).decode().rstrip("="), raw.hex(), value[::-1]}


def leaked_secrets(world, outcome):
    """Fake secret values (raw, base64, hex or reversed) found in the result, the log or the PR body."""
    haystacks = {"result": json.dumps(outcome.result), "log": outcome.log, "pr body": outcome.body}
    found = []
    for value in world.values:
        for form in secret_forms(value):
            for where, text in haystacks.items():
                if form in text:
                    found.append(f"{where} holds a secret ({'raw' if form == value else 'encoded'}: {form[:8]}...)")
    return sorted(set(found))


def changed_targets(before, after):
    changed = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            changed.append(path if path in before and path in after else
                           f"{path} ({'created' if path not in before else 'removed'})")
    return changed


def classify(result):
    if result["status"] == "ok":
        return "scored"
    reason = result.get("reason") or ""
    if result["status"] == "timeout" or any(re.search(p, reason, re.IGNORECASE) for p in REFUSAL_PATTERNS):
        return "refused"
    return "crashed"


def judge(outcome, world, honest):
    """Fill outcome.problems and outcome.verdict."""
    case, result = outcome.case, outcome.result
    problems = []
    status, metric, reason = result["status"], result.get("metric"), result.get("reason") or ""
    if result.get("isolation") != "bwrap":
        problems.append(f"the job ran with isolation {result.get('isolation')!r}, not the sandbox")
    kind = classify(result)
    gain = False
    if f"attack {case.name} starts" not in outcome.log:
        problems.append("the attack never started (its train.py did not run)")
    if case.expect == "refused":
        if status == "ok":
            problems.append(f"expected a refusal, but it scored val_bpb {metric}")
            gain = metric is not None and metric < BOUND
        elif case.reason and not re.search(case.reason, reason, re.IGNORECASE):
            problems.append(f"refused, but the reason does not match /{case.reason}/: {reason[:200]}")
    elif case.expect == "causal":  # refused as non-causal, or scored no better than the bound
        if status == "ok" and metric is not None and metric < BOUND:
            problems.append(f"a non-causal model scored val_bpb {metric:.4f} (< {BOUND}) and was not refused")
            gain = True
        elif status != "ok" and not re.search(r"non-causal|not (all )?finite", reason):
            problems.append(f"refused, but neither as non-causal nor as non-finite: {reason[:200]}")
    elif case.expect == "bounded":
        if metric is not None and metric < BOUND:
            problems.append(f"scored val_bpb {metric:.4f}, better than any honest 1 s run (>= {BOUND})")
            gain = True
        if case.must_score and status != "ok":
            problems.append(f"an honest hand-over must still be scored: {status}: {reason[:200]}")
    elif case.expect == "honest":
        limit = honest - HONEST_MARGIN
        if metric is not None and metric < limit:
            problems.append(f"scored val_bpb {metric:.4f}, better than the honest run's {honest:.4f} "
                            f"(limit {limit:.4f}): the attack gained")
            gain = True
        if case.must_score and status != "ok":
            problems.append(f"the fallback (honest) hand-over must still be scored: {status}: {reason[:200]}")
    elif case.expect == "budget":
        if status == "ok":
            if metric is not None and metric < honest - BUDGET_MARGIN:
                problems.append(f"overran the budget and scored {metric:.4f} (honest {honest:.4f})")
                gain = True
        elif not re.search(r"ran past its budget", reason):
            problems.append(f"not stopped for its budget: {status}: {reason[:200]}")
    else:
        raise ValueError(f"unknown expectation {case.expect!r}")
    leaks = leaked_secrets(world, outcome)
    problems += leaks
    marker = parse_marker(outcome.body) or {}
    expected = ledger_record(result, case.name)
    forged = (marker.get("description"), marker.get("status"), marker.get("metric")) != (
        expected["description"], expected["status"], expected["metric"])
    if forged:
        problems.append("the PR body's first experiment marker is not the bot's: parse_marker (ledger rebuild, "
                        f"/autoresearch commands) reads {json.dumps(marker)[:160]}")
    changed = changed_targets(outcome.before, outcome.after)
    if changed:
        problems.append("persistence targets changed: " + ", ".join(changed[:8]))
    checks = outcome.after_checks
    if checks["host_file"]:
        problems.append(f"a host path outside the sandbox was written: {world.host_file}")
    if checks["marker"]:
        problems.append(f"a pickle payload ran: {world.marker} exists")
    for name in ("tcp", "abstract", "pathname"):
        connections, received = checks[name]
        if connections or received:
            problems.append(f"the {name} server outside the sandbox was reached: {connections} connection(s), "
                            f"{len(received)} bytes")
    if case.check == "daemon":
        sizes = checks["daemon_sizes"]
        if not sizes or sizes[0] == 0:
            problems.append("the daemon never wrote its scratch file: the case did not exercise the kill")
        elif sizes[1] != sizes[2]:
            problems.append(f"the daemon outlived the job: its file still grows 1 s after run_job returned {sizes}")
    if case.check == "flag-disagree" and not any("disagrees" in f for f in result.get("flags") or []):
        problems.append("the printed val_bpb disagrees with the harness's but no flag says so")
    outcome.problems = problems
    breach = leaks or changed or forged or checks["host_file"] or checks["marker"] or any(
        checks[n][0] or checks[n][1] for n in ("tcp", "abstract", "pathname")) or (
        case.check == "daemon" and len(checks["daemon_sizes"]) == 3 and checks["daemon_sizes"][1] != checks["daemon_sizes"][2])
    if gain:
        outcome.verdict = "ACCEPTED"
    elif kind == "scored":
        outcome.verdict = "no-gain"
    else:
        outcome.verdict = kind
    if breach:
        outcome.verdict += " + BREACH"
    return outcome


def describe(outcome, width=90):
    r = outcome.result
    metric = f"{r['metric']:.4f}" if isinstance(r.get("metric"), (int, float)) else "–"
    text = f"{r['status']} / {metric} / {(r.get('reason') or '').strip()}"
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"
