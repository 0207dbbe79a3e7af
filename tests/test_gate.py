"""gpu_jobs.job with a gate and a regex metric: real subprocesses in a temporary directory.

The gate and the command are tiny Python scripts; each test runs in well under two seconds.
"""

import os
import textwrap
import threading
import time

import pytest

from gpu_jobs.job import JobSpec, run_job

BENCH = textwrap.dedent("""\
    import os, sys
    open("ran-bench", "w").write("yes")
    print("warm-up time_us: 99.0")
    print("time_us: 41.5")
    print("fingerprint: 3f2a")
""")


def gate_script(body):
    return "import os, sys, time\n" + textwrap.dedent(body)


def make_spec(tmp_path, gate_body=None, bench=BENCH, **spec):
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "bench.py").write_text(bench)
    if gate_body is not None:
        (source / "gate.py").write_text(gate_script(gate_body))
        spec.setdefault("gate", "python gate.py")
    spec.setdefault("command", "python bench.py")
    spec.setdefault("metric", "time_us")
    spec.setdefault("metric_regex", r"^time_us: ([0-9.]+)$")
    spec.setdefault("timeout_seconds", 20)
    spec.setdefault("gate_timeout_seconds", 20)
    spec.setdefault("log_path", str(tmp_path / "run.log"))
    return JobSpec(source_dir=str(source), **spec)


def test_a_passing_gate_then_the_regex_metric(tmp_path):
    spec = make_spec(tmp_path, "print('Ran 3 tests: OK')\n")
    result = run_job(spec)
    assert result["status"] == "ok", result["reason"]
    assert result["metric"] == 41.5  # the anchored regex skips the warm-up line
    assert result["metric_source"] == "regex"
    assert result["flags"] == []
    assert set(result["timings"]) >= {"gate_s", "total_s"}
    log = (tmp_path / "run.log").read_text()
    assert log.index("== gate: python gate.py ==") < log.index("Ran 3 tests: OK") < log.index("== run: python bench.py ==")
    assert "fingerprint: 3f2a" in result["log_tail"] and "Ran 3 tests" not in result["log_tail"]


@pytest.mark.parametrize("gate_body, reason", [
    ("print('FAILED (failures=1)'); sys.exit(1)\n", "the gate `python gate.py` failed with exit code 1: FAILED (failures=1)"),
    ("raise SystemExit(3)\n", "the gate `python gate.py` failed with exit code 3: no output"),
])
def test_a_failing_gate_is_gate_failed_and_the_command_never_runs(tmp_path, gate_body, reason):
    result = run_job(make_spec(tmp_path, gate_body))
    assert result["status"] == "gate-failed"
    assert result["reason"] == reason
    assert result["metric"] is None
    assert not (tmp_path / "src" / "ran-bench").exists()
    assert "gate_s" in result["timings"]


def test_a_gate_that_cannot_start_is_gate_failed(tmp_path):
    result = run_job(make_spec(tmp_path, gate="./no-such-test-runner"))
    assert result["status"] == "gate-failed"
    assert result["reason"].startswith("the gate could not start: could not start `./no-such-test-runner`")


def test_a_hanging_gate_is_killed_at_its_own_timeout(tmp_path):
    body = """\
        open("gate.pid", "w").write(str(os.getpid()))
        print("collecting tests", flush=True)
        time.sleep(60)
        """
    started = time.monotonic()
    # Unsandboxed, so that the gate's pid is this machine's (the sandbox's pid namespace dies whole).
    result = run_job(make_spec(tmp_path, body, gate_timeout_seconds=1, timeout_seconds=60, isolation="none"))
    elapsed = time.monotonic() - started
    assert result["status"] == "gate-failed"
    assert result["reason"] == ("the gate `python gate.py` did not finish within its 1 s timeout "
                                "(gate_timeout_seconds); it was killed")
    assert result["log_tail"] == "collecting tests"
    assert 1.0 <= elapsed < 4.0
    pid = int((tmp_path / "src" / "gate.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (tmp_path / "src" / "ran-bench").exists()


def test_gate_time_is_not_charged_to_the_command(tmp_path):
    # The gate takes longer than the command's whole timeout; the command itself is quick.
    result = run_job(make_spec(tmp_path, "time.sleep(1.2)\n", timeout_seconds=1.0))
    assert result["status"] == "ok", result["reason"]
    assert result["timings"]["gate_s"] >= 1.2
    assert result["metric"] == 41.5


def test_the_gate_gets_the_scrubbed_environment_and_its_phase(tmp_path):
    body = """\
        print("phase", os.environ.get("AUTORESEARCH_PHASE"), "token", "GITHUB_TOKEN" in os.environ)
        print("budget", os.environ.get("AUTORESEARCH_BUDGET_SECONDS"))
        sys.exit(1)
        """
    result = run_job(make_spec(tmp_path, body, budget_seconds=2.0),
                     environ=dict(os.environ, GITHUB_TOKEN="secret"))
    assert result["status"] == "gate-failed"
    assert "phase gate token False" in result["log_tail"]
    assert "budget 2.0" in result["log_tail"]


def test_cancel_during_the_gate(tmp_path):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    result = run_job(make_spec(tmp_path, "print('slow tests', flush=True); time.sleep(60)\n"), cancel_event=cancel)
    assert result["status"] == "cancelled"
    assert not (tmp_path / "src" / "ran-bench").exists()


@pytest.mark.parametrize("bench, regex, status, reason", [
    ("print('time_us: fast')\n", r"time_us: (\S+)", "crash", "no output line matched the metric regex"),
    ("print('nothing')\n", r"time_us: ([0-9.]+)", "crash", "no output line matched the metric regex"),
    ("print('time_us: 3'); raise SystemExit(1)\n", r"time_us: ([0-9.]+)", "crash", "exited with code 1"),
    ("print('time_us: 3')\n", r"time_us: ([0-9.]+)", "ok", ""),
])
def test_regex_metrics_without_a_gate(tmp_path, bench, regex, status, reason):
    result = run_job(make_spec(tmp_path, bench=bench, metric_regex=regex))
    assert result["status"] == status
    assert reason in result["reason"]
    assert "gate_s" not in result["timings"]


def test_a_summary_key_other_than_val_bpb_needs_no_harness_result(tmp_path):
    bench = "print('---'); print('score: 17'); print('total: 25')\n"
    result = run_job(make_spec(tmp_path, bench=bench, metric="score", metric_regex="",
                               expected_harness={}))
    assert (result["status"], result["metric"], result["metric_source"]) == ("ok", 17.0, "printed")
    assert result["summary"] == {"score": 17, "total": 25}


def test_a_gate_that_rewrites_the_frozen_scorer_is_caught(tmp_path):
    import hashlib

    source = tmp_path / "src"
    source.mkdir()
    (source / "bench.py").write_text(BENCH)
    frozen = {"bench.py": hashlib.sha256(BENCH.encode()).hexdigest()}
    spec = make_spec(tmp_path, "open('bench.py', 'w').write(\"print('time_us: 0.001')\")\n", expected_harness=frozen)
    result = run_job(spec)
    assert result["status"] == "crash" and result["metric"] is None
    assert result["reason"].startswith("the gate changed the frozen harness: bench.py differs")
