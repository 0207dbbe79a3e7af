"""gpu_jobs.job: one experiment, in the sandbox (or, where a test needs this machine's pids and
paths, unsandboxed), with an allowlisted environment, a hard timeout, redacted output, and with a
harness the two phases: training hands over a graph, a fresh harness process scores it.

The "train.py" scripts here are tiny real Python programs written to a temporary directory;
each runs in a fraction of a second (the timeout and cancel tests stop one after ~1 s); the
two-phase tests use the real prepare.py with a one-layer model.
"""

import hashlib
import json
import os
import sys
import textwrap
import threading
import time

import pytest

from gpu_jobs.job import JobSpec, command_argv, harness_mismatches, run_job
from gpu_jobs.sandbox import allowed_environment, looks_secret, probe, secret_values

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
needs_sandbox = pytest.mark.skipif(not probe()[0], reason=f"no sandbox here: {probe()[1]}")

SUMMARY = """\
print("step 00001 (50.0%) | loss: 3.9", flush=True)
print("step 00002 (100.0%) | loss: 3.7", flush=True)
print("---")
print("val_bpb:          {printed}")
print("training_seconds: 1.5")
print("peak_vram_mb:     2048.0")
print("num_steps:        2")
print("device:           cpu")
"""


def make_job(tmp_path, body, printed="3.500000", files=None, **spec):
    """A source directory whose train.py runs `body` (then prints a summary unless told not to)."""
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    text = "import json, os, subprocess, sys, time\n" + textwrap.dedent(body)
    if printed is not None:
        text += SUMMARY.format(printed=printed)
    (source / "train.py").write_text(text)
    for name, content in (files or {}).items():
        (source / name).write_text(content)
    spec.setdefault("timeout_seconds", 20)
    return JobSpec(source_dir=str(source), **spec)


def alive(pid):
    """True while `pid` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid, seconds=2.0):
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


def kill_if_alive(pid):
    if alive(pid):
        os.kill(pid, 9)


# ---- the environment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value, kept",
    [
        # credentials: the experiment runs proposed code and must never see them
        ("GITHUB_TOKEN", "ghp_x", False), ("GH_TOKEN", "x", False), ("ANTHROPIC_API_KEY", "x", False),
        ("MODAL_TOKEN_ID", "x", False), ("MODAL_TOKEN_SECRET", "x", False), ("AWS_SECRET_ACCESS_KEY", "x", False),
        ("DATABASE_URL", "postgres://u:pw@h/db", False), ("PGPASSWORD", "x", False),
        ("SLACK_WEBHOOK_URL", "https://hooks.slack.com/x", False), ("SERVICE_APIKEY", "x", False),
        ("CUDA_AUTH_TOKEN", "x", False),  # an allowlisted prefix does not launder a secret's name
        ("SSH_AUTH_SOCK", "/tmp/agent", False),
        # default-deny: what is not on the allowlist is dropped, harmless or not
        ("HOME", "/root", False), ("PYTHONPATH", "/repo", False), ("MONKEY_BUSINESS", "1", False),
        ("AUTORESEARCH_SEED", "1", False),  # the job sets its own
        # what a training run needs stays
        ("PATH", "/usr/bin", True), ("LANG", "C.UTF-8", True), ("LC_ALL", "C", True),
        ("CUDA_VISIBLE_DEVICES", "0", True), ("TORCHINDUCTOR_CACHE_DIR", "/c", True), ("OMP_NUM_THREADS", "2", True),
    ],
    ids=lambda value: str(value) if isinstance(value, str) and value.isupper() else None,
)
def test_allowed_environment(name, value, kept):
    environ = {name: value, "PATH": "/usr/bin"}
    assert (name in allowed_environment(environ)) is kept
    assert environ == {name: value, "PATH": "/usr/bin"}  # a copy: the input is untouched


def test_secret_values_to_redact():
    environ = {"GITHUB_TOKEN": "ghp_abcdefgh", "DATABASE_URL": "postgres://bot:hunter22@db/prod",
               "OPAQUE": "a1b2c3d4e5f6g7h8i9j0k1", "PATH": "/usr/bin:/bin", "USER": "runner", "SHORT_KEY": "abc"}
    values = secret_values(environ)
    assert "ghp_abcdefgh" in values and "hunter22" in values and "a1b2c3d4e5f6g7h8i9j0k1" in values
    assert "postgres://bot:hunter22@db/prod" in values
    assert not {"/usr/bin:/bin", "runner", "abc"} & set(values)
    assert looks_secret("X", "https://user:pw@host/") and not looks_secret("KEYBOARD_LAYOUT")


@pytest.mark.parametrize(
    "command, expected_tail",
    [("python train.py", ["train.py"]), ("python3 -u train.py --depth 4", ["-u", "train.py", "--depth", "4"]),
     ("python train.py --name 'a b'", ["train.py", "--name", "a b"])],
    ids=["python", "python3-args", "quoted"],
)
def test_command_argv_uses_this_interpreter(command, expected_tail):
    argv = command_argv(command)
    assert argv == [sys.executable, *expected_tail]


def test_command_argv_leaves_other_programs_alone():
    assert command_argv("uv run train.py") == ["uv", "run", "train.py"]


def test_harness_mismatches(tmp_path):
    (tmp_path / "prepare.py").write_text("FROZEN = 1\n")
    good = hashlib.sha256(b"FROZEN = 1\n").hexdigest()
    assert harness_mismatches(tmp_path, {"prepare.py": good}) == []
    assert harness_mismatches(tmp_path, {}) == []
    problems = harness_mismatches(tmp_path, {"prepare.py": "0" * 64, "data.py": good})
    assert problems[0] == "data.py is missing"
    assert problems[1].startswith("prepare.py differs from the frozen harness (sha256 " + good[:12])


# ---- running ----------------------------------------------------------------------------------


def test_success_in_trust_mode(tmp_path):
    lines = []
    spec = make_job(tmp_path, "", log_path=str(tmp_path / "run.log"))
    result = run_job(spec, on_line=lines.append)
    assert result["status"] == "ok", result["reason"]
    assert result["metric"] == 3.5 and result["metric_source"] == "printed"
    assert result["exit_code"] == 0 and result["reason"] == ""
    assert any(flag.startswith("trust mode") for flag in result["flags"])
    assert result["summary"]["num_steps"] == 2 and result["summary"]["device"] == "cpu"
    assert result["harness_result"] is None
    assert result["peak_memory_mb"] == 2048.0
    assert result["device"] == "cpu"
    assert result["timings"]["training_s"] == 1.5
    assert 0 < result["timings"]["startup_s"] <= result["timings"]["total_s"]
    # every line reached the callback, the log file and the tail
    assert lines[0] == "step 00001 (50.0%) | loss: 3.9" and lines[-1] == "device:           cpu"
    assert (tmp_path / "run.log").read_text().splitlines() == lines
    assert result["log_tail"].splitlines() == lines
    json.dumps(result)  # JSON-ready: the GPU service sends it back as is


def test_log_tail_keeps_the_last_lines(tmp_path):
    spec = make_job(tmp_path, "for i in range(100):\n    print('line', i)\n", printed=None)
    result = run_job(spec)
    tail = result["log_tail"].splitlines()
    assert len(tail) == 40 and tail[-1] == "line 99" and tail[0] == "line 60"


TINY_TRAIN = """\
import math, os, sys, torch
import prepare
{before}
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(prepare.VOCAB_SIZE, prepare.VOCAB_SIZE)
    def forward(self, idx):
        {forward}
model = Tiny()
x, y = next(prepare.make_dataloader("train", 8, prepare.MAX_SEQ_LEN, "cpu"))
opt = torch.optim.SGD(model.parameters(), lr=1.0)
for step in range(20):
    loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad(); loss.backward(); opt.step()
    print(f"step {{step:05d}} ({{(step + 1) * 5:.1f}}%) | loss: {{loss.item():.3f}}", flush=True)
val_bpb = prepare.evaluate_bpb(model, {batch})
print("---")
print(f"val_bpb:          {{{printed}:.6f}}")
print("training_seconds: 1.0")
print("device:           cpu")
print("secret_hint:      " + "x" * 500)
"""


@pytest.fixture(scope="module")
def split_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def harness_job(tmp_path, split_cache, before="", forward="return self.emb(idx)", printed="val_bpb", batch=16,
                **spec):
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(TINY_TRAIN.format(before=before, forward=forward, printed=printed, batch=batch))
    (source / "prepare.py").write_bytes((ROOT / "prepare.py").read_bytes())
    spec.setdefault("budget_seconds", 1.0)
    spec.setdefault("startup_seconds", 120)
    spec.setdefault("log_path", str(tmp_path / "run.log"))
    job = JobSpec(source_dir=str(source), data="stdlib",
                  expected_harness={"prepare.py": hashlib.sha256((ROOT / "prepare.py").read_bytes()).hexdigest()},
                  **spec)
    environ = dict(os.environ, AUTORESEARCH_CACHE_DIR=split_cache, CUDA_VISIBLE_DEVICES="",
                   GITHUB_TOKEN="ghp_" + "Z9" * 18)
    return run_job(job, environ=environ)


def test_the_metric_comes_from_a_fresh_harness_process(tmp_path, split_cache):
    result = harness_job(tmp_path, split_cache)
    assert result["status"] == "ok", result["reason"]
    # a bigram table fit to one batch for 20 steps: near a uniform guess's 8 bits, above or below
    assert result["metric_source"] == "harness" and 3.0 < result["metric"] < 10.0
    measured = result["harness_result"]
    assert measured["causal"] is True and measured["batch_size"] == 16
    assert measured["causal_rows_checked"] == measured["eval_tokens"] // measured["seq_len"]  # every scored row
    assert result["summary"]["val_bpb"] == result["metric"]  # the printed nan is replaced by the measurement
    assert result["flags"] == [] and result["device"] == "cpu"
    assert "secret_hint" not in result["summary"]  # an unknown text key is not kept
    assert {"train_s", "eval_s", "total_s"} <= set(result["timings"])
    assert result["isolation"] == ("bwrap" if probe()[0] else "none")
    assert not list((tmp_path / "src").glob(".autoresearch-handoff/*.tmp"))


def test_a_printed_value_that_disagrees_is_flagged_and_ignored(tmp_path, split_cache):
    result = harness_job(tmp_path, split_cache, printed="0.1")
    assert result["status"] == "ok" and result["metric"] > 3.0
    assert result["flags"] == [f"printed val_bpb 0.100000 disagrees with the harness's {result['metric']:.6f}"]


def test_a_model_that_sees_the_next_token_is_a_crash(tmp_path, split_cache):
    result = harness_job(tmp_path, split_cache, forward="return self.emb(torch.roll(idx, -1, 1))")
    assert result["status"] == "crash" and result["metric"] is None
    assert "non-causal model" in result["reason"]


def test_no_handoff_is_a_crash_that_names_the_fix(tmp_path, split_cache):
    result = harness_job(tmp_path, split_cache, printed="0.1",
                         before="prepare.evaluate_bpb = lambda model, batch_size: 0.1")
    assert result["status"] == "crash"
    assert "did not hand its model to the harness" in result["reason"] and "evaluate_bpb" in result["reason"]


def test_a_handoff_that_is_a_link_is_not_followed(tmp_path, split_cache):
    before = ("def _link(model, batch_size):\n"
              "    path = os.environ['AUTORESEARCH_HANDOFF']\n"
              "    os.makedirs(os.path.dirname(path), exist_ok=True)\n"
              "    os.symlink(os.environ['AUTORESEARCH_TRAIN_DATA'], path)\n"
              "    return 0.1\n"
              "prepare.evaluate_bpb = _link")
    result = harness_job(tmp_path, split_cache, before=before, printed="0.1")
    assert result["status"] == "crash" and "plain file" in result["reason"]


def test_the_validation_split_is_not_in_the_train_phase(tmp_path, split_cache):
    before = "print('val', prepare.load_corpus().val is None, 'train' in os.environ['AUTORESEARCH_TRAIN_DATA'])"
    result = harness_job(tmp_path, split_cache, before=before)
    assert result["status"] == "ok" and "val True True" in (tmp_path / "run.log").read_text()


def test_a_train_phase_past_its_allowance_is_stopped(tmp_path, split_cache):
    started = time.monotonic()
    result = harness_job(tmp_path, split_cache, before="time.sleep(60)".replace("time", "__import__('time')"),
                         startup_seconds=3)
    assert result["status"] == "timeout" and "budget plus start-up allowance" in result["reason"]
    assert time.monotonic() - started < 30


@needs_sandbox
def test_secret_values_are_redacted_from_everything_printed(tmp_path, split_cache):
    before = "print('I found', 'ghp_' + 'Z9' * 18, flush=True)"  # as if it had read the token somewhere
    result = harness_job(tmp_path, split_cache, before=before)
    token = "ghp_" + "Z9" * 18
    assert token not in json.dumps(result) and token not in (tmp_path / "run.log").read_text()
    assert "I found [redacted]" in (tmp_path / "run.log").read_text()


def test_other_metric_is_not_trust_mode(tmp_path):
    spec = make_job(tmp_path, "print('---')\nprint('accuracy: 0.91')\n", printed=None, metric="accuracy")
    result = run_job(spec)
    assert (result["status"], result["metric"], result["flags"]) == ("ok", 0.91, [])


@pytest.mark.parametrize(
    "body, printed, reason",
    [
        ("print('loading')\nprint('CUDA out of memory', file=sys.stderr)\nsys.exit(3)\n", None,
         "exited with code 3: CUDA out of memory"),
        ("print('loading')\nraise SystemExit('boom: bad shape')\n", None, "exited with code 1: boom: bad shape"),
        ("sys.exit(2)\n", None, "exited with code 2: no output"),
        ("print('training')\n", None, "the run printed no `---` summary block"),
        ("", "NaN", "the summary block has no numeric `val_bpb`"),
        ("", "oops", "the summary block has no numeric `val_bpb`"),
        ("print('---')\nprint('num_steps: 3')\n", None, "the summary block has no numeric `val_bpb`"),
    ],
    ids=["exit-code-with-last-line", "exception", "silent-failure", "no-summary", "nan-printed",
         "text-printed", "metric-missing"],
)
def test_crashes(tmp_path, body, printed, reason):
    result = run_job(make_job(tmp_path, body, printed=printed))
    assert result["status"] == "crash"
    assert result["metric"] is None
    assert result["reason"] == reason


def test_non_zero_exit_after_a_summary_is_still_a_crash(tmp_path):
    result = run_job(make_job(tmp_path, "import atexit\natexit.register(lambda: os._exit(4))\n"))
    assert result["status"] == "crash" and result["exit_code"] == 4
    assert result["summary"]["val_bpb"] == 3.5  # kept for the record, but not a result


def test_command_that_cannot_start(tmp_path):
    spec = make_job(tmp_path, "", command="./no-such-program-here")
    result = run_job(spec)
    assert result["status"] == "crash"
    assert result["reason"].startswith("could not start `./no-such-program-here`")


def test_timeout_kills_the_process_group(tmp_path):
    pids = tmp_path / "pids"
    body = f"""\
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        print("started", flush=True)
        time.sleep(60)
        """
    spec = make_job(tmp_path, body, printed=None, timeout_seconds=1, isolation="none")  # this machine's pids
    started = time.monotonic()
    result = run_job(spec)
    elapsed = time.monotonic() - started
    main_pid, child_pid = map(int, pids.read_text().split())
    try:
        assert result["status"] == "timeout"
        assert result["reason"] == "no result within the 1 s timeout; the process was killed"
        assert result["log_tail"] == "started"
        assert 1.0 <= elapsed < 4.0
        assert wait_dead(main_pid), "the training process survived its timeout"
        assert wait_dead(child_pid), "a process the training command spawned survived its timeout"
    finally:
        kill_if_alive(child_pid)
        kill_if_alive(main_pid)


def test_leftover_children_are_killed_after_a_normal_exit(tmp_path):
    pids = tmp_path / "pids"
    body = f"""\
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open({str(pids)!r}, "w").write(str(child.pid))
        """
    result = run_job(make_job(tmp_path, body, isolation="none"))
    child_pid = int(pids.read_text())
    try:
        assert result["status"] == "ok"
        assert wait_dead(child_pid, 1.0)
    finally:
        kill_if_alive(child_pid)


def test_cancel_from_another_thread(tmp_path):
    pid_file = tmp_path / "pid"
    body = f"""\
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("running", flush=True)
        time.sleep(60)
        """
    cancel = threading.Event()
    lines = []

    def on_line(line):
        lines.append(line)
        threading.Timer(0.2, cancel.set).start()

    started = time.monotonic()
    result = run_job(make_job(tmp_path, body, printed=None, isolation="none"), on_line=on_line, cancel_event=cancel)
    try:
        assert result["status"] == "cancelled"
        assert result["reason"] == "stopped by the user"
        assert lines == ["running"]
        assert time.monotonic() - started < 4.0
        assert wait_dead(int(pid_file.read_text()))
    finally:
        kill_if_alive(int(pid_file.read_text()))


def test_harness_mismatch_refuses_before_running(tmp_path):
    marker = tmp_path / "ran"
    spec = make_job(tmp_path, f"open({str(marker)!r}, 'w').write('x')\n", files={"prepare.py": "FROZEN = 2\n"},
                    expected_harness={"prepare.py": hashlib.sha256(b"FROZEN = 1\n").hexdigest()}, isolation="none")
    result = run_job(spec)
    assert result["status"] == "crash"
    assert result["reason"].startswith("harness check failed: prepare.py differs from the frozen harness")
    assert result["exit_code"] is None
    assert not marker.exists(), "the command ran although the harness was modified"


def test_missing_harness_refuses_before_running(tmp_path):
    marker = tmp_path / "ran"
    spec = make_job(tmp_path, f"open({str(marker)!r}, 'w').write('x')\n", expected_harness={"prepare.py": "0" * 64},
                    isolation="none")
    result = run_job(spec)
    assert result["reason"] == "harness check failed: prepare.py is missing"
    assert not marker.exists()


def test_child_environment(tmp_path):
    body = """\
        print("ENV " + json.dumps(dict(os.environ)), flush=True)
        """
    spec = make_job(tmp_path, body, budget_seconds=12.5, seed=7, data="stdlib")
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GITHUB_TOKEN": "ghp_secret",
        "ANTHROPIC_API_KEY": "sk-ant-secret",
        "MODAL_TOKEN_ID": "ak-secret",
        "MODAL_TOKEN_SECRET": "as-secret",
        "KEEP_ME": "yes",
        "LC_ALL": "C",
        "AUTORESEARCH_SEED": "999",
    }
    result = run_job(spec, environ=environ)
    line = next(l for l in result["log_tail"].splitlines() if l.startswith("ENV "))
    child = json.loads(line[4:])
    for secret in ("GITHUB_TOKEN", "ANTHROPIC_API_KEY", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        assert secret not in child
    assert "secret" not in line
    assert "KEEP_ME" not in child and child["LC_ALL"] == "C"  # default-deny; the allowlist passes
    assert child["HOME"] == str(tmp_path)  # in the sandbox an empty tmpfs at that path
    assert child["AUTORESEARCH_BUDGET_SECONDS"] == "12.5"
    assert child["AUTORESEARCH_SEED"] == "7"  # the job's, not the caller's
    assert child["AUTORESEARCH_DATA"] == "stdlib"
    assert child["PYTHONUNBUFFERED"] == "1"


def test_child_environment_defaults_to_this_process(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_from_os_environ")
    monkeypatch.setenv("LC_JOB_TEST", "1")
    body = """\
        print("has-token", "GITHUB_TOKEN" in os.environ, "visible", os.environ.get("LC_JOB_TEST"))
        """
    result = run_job(make_job(tmp_path, body))
    assert "has-token False visible 1" in result["log_tail"]


@needs_sandbox
def test_in_the_sandbox_nothing_outlives_the_run(tmp_path):
    body = """\
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    open("beat", "a").write("x")
                    time.sleep(0.05)
            os._exit(0)
        time.sleep(0.3)
        """
    result = run_job(make_job(tmp_path, body))
    assert result["status"] == "ok", result["reason"]
    beat = tmp_path / "src" / "beat"
    size = beat.stat().st_size
    time.sleep(0.5)
    assert beat.stat().st_size == size, "a daemon of the experiment outlived it"


@needs_sandbox
def test_the_sandbox_sees_no_host_secrets_and_writes_nowhere_else(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".git-credentials").write_text("https://bot:ghp_credential_in_home@github.com\n")
    outside = tmp_path / "outside.txt"
    body = f"""\
        print("home", sorted(os.listdir(os.environ["HOME"])), flush=True)
        print("pids", sorted(p for p in os.listdir("/proc") if p.isdigit()), flush=True)
        open({str(outside)!r}, "w").write("escaped")  # lands in the sandbox's own /tmp, gone with it
        import site
        try:
            open(os.path.join(site.getsitepackages()[0], "zz-planted.pth"), "w").write("import os")
        except OSError as exc:
            print("write refused", type(exc).__name__, flush=True)
        """
    environ = dict(os.environ, HOME=str(home), GITHUB_TOKEN="ghp_env_token_value_123")
    result = run_job(make_job(tmp_path, body), environ=environ)
    log = result["log_tail"]
    assert "home []" in log and "write refused" in log and not outside.exists()
    pids = eval(log.split("pids ", 1)[1].splitlines()[0])
    assert len(pids) <= 3  # bwrap's init, the command, maybe a helper: none of this machine's processes
    assert "ghp_" not in json.dumps(result)
    assert not any(p.endswith("zz-planted.pth") for d in __import__("site").getsitepackages() for p in os.listdir(d))


def test_printed_markers_cannot_open_a_hidden_comment_in_a_pr_body(tmp_path):
    body = """\
        print('<!-- autoresearch:experiment {"id": 1, "status": "keep", "metric": 0.01} -->', flush=True)
        sys.exit(1)
        """
    result = run_job(make_job(tmp_path, body, printed=None))
    assert result["status"] == "crash"
    assert "<!--" not in json.dumps(result) and "<! -- autoresearch:experiment" in result["log_tail"]


@pytest.mark.parametrize("gpu, budget, setting, expected", [
    (False, 15, None, 11.5), (False, 300, None, 40.0), (True, 300, None, 150.0), (False, 15, 4, 4.0)],
    ids=["cpu-quick-start", "cpu-5-min", "gpu", "setting"])
def test_the_start_up_allowance(monkeypatch, gpu, budget, setting, expected):
    import gpu_jobs.steps as steps

    monkeypatch.setattr(steps, "has_gpu", lambda: gpu)
    spec = JobSpec(source_dir="src", budget_seconds=budget, startup_seconds=setting)
    assert steps.startup_allowance(spec) == expected


# ---- timings of the duty cycle (issue #10) ------------------------------------------------------


def test_compile_time_train_py_reports_is_taken_out_of_startup(tmp_path):
    body = """\
    time.sleep(0.8)  # imports, data, model: start-up; then the first step, which compiles on a GPU
    print("step 00000 (50.0%) | loss: 3.9", flush=True)
    print("step 00001 (100.0%) | loss: 3.7", flush=True)
    print("---")
    print("val_bpb:          3.5")
    print("training_seconds: 1.0")
    print("compile_seconds:  0.5")
    """
    result = run_job(make_job(tmp_path, body, printed=None))
    timings = result["timings"]
    assert result["status"] == "ok", result["reason"]
    assert timings["compile_s"] == 0.5 and timings["training_s"] == 1.0
    assert 0.3 <= timings["startup_s"] < timings["total_s"] - 0.5  # the first step line came after >= 0.8 s


def test_handover_and_the_hidden_eval_startup_are_measured(tmp_path, split_cache):
    slow_handover = ("import time\n_hand = prepare.evaluate_bpb\n"
                     "prepare.evaluate_bpb = lambda m, b: (time.sleep(0.7), _hand(m, b))[1]")
    result = harness_job(tmp_path, split_cache, before=slow_handover)
    timings = result["timings"]
    assert result["status"] == "ok", result["reason"]
    # from the last step line to the graph in the job's hands: the sleep, tracing, writing, exiting
    assert 0.7 <= timings["handover_s"] < timings["train_s"]
    assert 0 < timings["eval_startup_s"] and 0 < timings["eval_s"] < timings["total_s"]
    assert "compile_s" not in timings  # this train.py does not report one
    assert set(timings) >= {"startup_s", "training_s", "train_s", "handover_s", "eval_startup_s", "eval_s",
                            "eval_load_s", "total_s"}
