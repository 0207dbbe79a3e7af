"""gpu_jobs.job: one experiment in a subprocess, with a scrubbed environment and a hard timeout.

The "train.py" scripts here are tiny real Python programs written to a temporary directory;
each runs in a fraction of a second (the timeout and cancel tests stop one after ~1 s).
"""

import hashlib
import json
import os
import sys
import textwrap
import threading
import time

import pytest

from gpu_jobs.job import JobSpec, command_argv, harness_mismatches, run_job, scrub_environment

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


def write_harness_result(payload):
    return f"json.dump({payload!r}, open(os.environ['AUTORESEARCH_RESULT_PATH'], 'w'))\n"


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
    spec.setdefault("result_path", str(tmp_path / "work" / "harness_result.json"))
    (tmp_path / "work").mkdir(exist_ok=True)
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
    "name, kept",
    [
        # credentials: the training command runs proposed code and must never see them
        ("GITHUB_TOKEN", False),
        ("GH_TOKEN", False),
        ("ANTHROPIC_API_KEY", False),
        ("MODAL_TOKEN_ID", False),
        ("MODAL_TOKEN_SECRET", False),
        ("AWS_SECRET_ACCESS_KEY", False),
        ("AWS_ACCESS_KEY_ID", False),
        ("AWS_SESSION_TOKEN", False),
        ("HF_TOKEN", False),
        ("WANDB_API_KEY", False),
        ("ACTIONS_RUNTIME_TOKEN", False),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", False),  # half of the OIDC token pair: drop it too
        ("GOOGLE_APPLICATION_CREDENTIALS", False),
        ("DB_PASSWORD", False),
        ("GITHUB_PAT", False),
        ("github_token", False),  # case does not hide a secret
        # everything a training run needs stays. `KEY`, `TOKEN` and `PAT` are credential words only
        # as whole `_`-separated words: KEYBOARD_LAYOUT is a keyboard, PATH is not a personal
        # access token, TOKENIZERS_PARALLELISM configures the tokenizers library.
        ("PATH", True),
        ("HOME", True),
        ("PYTHONPATH", True),
        ("CUDA_VISIBLE_DEVICES", True),
        ("AUTORESEARCH_SEED", True),
        ("AUTORESEARCH_RESULT_PATH", True),
        ("KEYBOARD_LAYOUT", True),
        ("TOKENIZERS_PARALLELISM", True),
        ("MONKEY_BUSINESS", True),
    ],
    ids=lambda value: str(value) if isinstance(value, str) else None,
)
def test_scrub_environment(name, kept):
    environ = {name: "value", "ALWAYS_HERE": "1"}
    scrubbed = scrub_environment(environ)
    assert (name in scrubbed) is kept
    assert scrubbed["ALWAYS_HERE"] == "1"
    assert environ == {name: "value", "ALWAYS_HERE": "1"}  # a copy: the input is untouched


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


def test_metric_from_the_harness(tmp_path):
    harness = {"val_bpb": 3.25, "causal": True, "eval_seconds": 0.7, "device": "NVIDIA H100"}
    spec = make_job(tmp_path, write_harness_result(harness), printed="3.250010")
    result = run_job(spec)
    assert result["status"] == "ok", result["reason"]
    assert result["metric"] == 3.25 and result["metric_source"] == "harness"
    assert result["flags"] == []  # agrees within the tolerance, and not trust mode
    assert result["harness_result"] == harness
    assert result["device"] == "NVIDIA H100"  # the harness's word over the printed one
    assert result["timings"]["eval_s"] == 0.7


def test_printed_value_that_disagrees_is_flagged(tmp_path):
    spec = make_job(tmp_path, write_harness_result({"val_bpb": 3.0, "causal": True}), printed="2.000000")
    result = run_job(spec)
    assert result["status"] == "ok"
    assert result["metric"] == 3.0  # the harness's number is recorded, not the printed one
    assert result["flags"] == ["printed val_bpb 2.000000 disagrees with the harness's 3.000000"]


def test_harness_metric_without_a_printed_block(tmp_path):
    spec = make_job(tmp_path, write_harness_result({"val_bpb": 3.0, "causal": True}), printed=None)
    result = run_job(spec)
    assert (result["status"], result["metric"], result["summary"]) == ("ok", 3.0, None)


def test_non_causal_model_is_a_crash(tmp_path):
    spec = make_job(tmp_path, write_harness_result({"val_bpb": 1.0, "causal": False}), printed="1.000000")
    result = run_job(spec)
    assert result["status"] == "crash" and result["metric"] is None
    assert "causality probe failed" in result["reason"]


@pytest.mark.parametrize("causal", [False, True], ids=["non-causal", "causal"])
def test_harness_result_without_a_value_is_not_ok(tmp_path, causal):
    spec = make_job(tmp_path, write_harness_result({"val_bpb": None, "causal": causal}), printed="1.000000")
    result = run_job(spec)
    assert result["status"] == "crash"


def test_harness_nan_is_a_crash(tmp_path):
    spec = make_job(tmp_path, "json.dump({'val_bpb': float('nan'), 'causal': True}, "
                              "open(os.environ['AUTORESEARCH_RESULT_PATH'], 'w'))\n")
    result = run_job(spec)
    assert result["status"] == "crash" and "val_bpb = nan, not a finite number" in result["reason"]


def test_unreadable_harness_file_is_a_crash(tmp_path):
    spec = make_job(tmp_path, "open(os.environ['AUTORESEARCH_RESULT_PATH'], 'w').write('{torn')\n")
    result = run_job(spec)
    assert result["status"] == "crash" and "not a JSON object" in result["reason"]


def test_harness_file_that_is_not_an_object(tmp_path):
    spec = make_job(tmp_path, "open(os.environ['AUTORESEARCH_RESULT_PATH'], 'w').write('[3.0]')\n")
    result = run_job(spec)
    assert result["status"] == "crash"


def test_a_stale_result_file_is_removed_first(tmp_path):
    spec = make_job(tmp_path, "")
    with open(spec.result_path, "w") as stale:
        json.dump({"val_bpb": 0.001, "causal": True}, stale)
    result = run_job(spec)
    assert result["metric"] == 3.5 and result["metric_source"] == "printed"


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
    spec = make_job(tmp_path, body, printed=None, timeout_seconds=1)
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
    result = run_job(make_job(tmp_path, body))
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
    result = run_job(make_job(tmp_path, body, printed=None), on_line=on_line, cancel_event=cancel)
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
                    expected_harness={"prepare.py": hashlib.sha256(b"FROZEN = 1\n").hexdigest()})
    result = run_job(spec)
    assert result["status"] == "crash"
    assert result["reason"].startswith("harness check failed: prepare.py differs from the frozen harness")
    assert result["exit_code"] is None
    assert not marker.exists(), "the command ran although the harness was modified"


def test_missing_harness_refuses_before_running(tmp_path):
    marker = tmp_path / "ran"
    spec = make_job(tmp_path, f"open({str(marker)!r}, 'w').write('x')\n", expected_harness={"prepare.py": "0" * 64})
    result = run_job(spec)
    assert result["reason"] == "harness check failed: prepare.py is missing"
    assert not marker.exists()


def test_matching_harness_runs(tmp_path):
    marker = tmp_path / "ran"
    spec = make_job(tmp_path, f"open({str(marker)!r}, 'w').write('x')\n" + write_harness_result({"val_bpb": 3.5}),
                    files={"prepare.py": "FROZEN = 1\n"},
                    expected_harness={"prepare.py": hashlib.sha256(b"FROZEN = 1\n").hexdigest()})
    result = run_job(spec)
    assert result["status"] == "ok" and result["metric_source"] == "harness"
    assert marker.exists()


def test_with_a_harness_a_printed_value_alone_is_not_trusted(tmp_path):
    spec = make_job(tmp_path, "", files={"prepare.py": "FROZEN = 1\n"},
                    expected_harness={"prepare.py": hashlib.sha256(b"FROZEN = 1\n").hexdigest()})
    result = run_job(spec)
    assert result["status"] == "crash" and "evaluate_bpb" in result["reason"]


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
        "AUTORESEARCH_RESULT_PATH": "/somewhere/stale.json",
    }
    result = run_job(spec, environ=environ)
    line = next(l for l in result["log_tail"].splitlines() if l.startswith("ENV "))
    child = json.loads(line[4:])
    for secret in ("GITHUB_TOKEN", "ANTHROPIC_API_KEY", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        assert secret not in child
    assert "secret" not in line
    assert child["KEEP_ME"] == "yes" and child["HOME"] == str(tmp_path)
    assert child["AUTORESEARCH_BUDGET_SECONDS"] == "12.5"
    assert child["AUTORESEARCH_SEED"] == "7"
    assert child["AUTORESEARCH_DATA"] == "stdlib"
    assert child["AUTORESEARCH_RESULT_PATH"] == spec.result_path  # the job's path, not the caller's
    assert child["PYTHONUNBUFFERED"] == "1"


def test_child_environment_defaults_to_this_process(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_from_os_environ")
    monkeypatch.setenv("JOB_TEST_VISIBLE", "1")
    body = """\
        print("has-token", "GITHUB_TOKEN" in os.environ, "visible", os.environ.get("JOB_TEST_VISIBLE"))
        """
    result = run_job(make_job(tmp_path, body))
    assert "has-token False visible 1" in result["log_tail"]
