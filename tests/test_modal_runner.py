"""bot/runners/modal.py: submit, poll, cancel, re-attach after a restart, cost, preflight.

No network: Modal's Function and FunctionCall are replaced by stand-ins whose methods are checked
against the installed SDK's signatures (so they cannot drift from what the runner really calls).
What the stand-ins do is simulated: a call that is "running" raises the builtin TimeoutError from
get(), as the SDK's poll does (modal/_functions.py, poll_function). Preflight's unreachable case
uses the real client against a closed loopback port.
"""

import inspect
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import typing

import modal
import modal.exception
import pytest

from bot.errors import BotError, RunnerError
from bot.pricing import GPU_PRICES, gpu_price_per_second
from bot.runners import Experiment
from bot.runners.modal import (
    MAX_POLL_FAILURES,
    NO_TOKEN,
    QUEUE_ALLOWANCE_S,
    ModalRunner,
    job_spec,
    pack,
    preflight,
    run_key,
)
from gpu_jobs import modal_app
from gpu_jobs.modal_app import code_digest, function_timeout

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


class FakeCall:
    """Stands in for modal.FunctionCall: `outcomes` are what successive get() calls return or raise."""

    made: typing.ClassVar[dict] = {}

    def __init__(self, call_id, outcomes=()):
        self.object_id = call_id
        self.outcomes = list(outcomes)
        self.gets, self.cancels = [], []
        FakeCall.made[call_id] = self

    def get(self, timeout=None, *, index=0):
        self.gets.append(timeout)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else (self.outcomes or [TimeoutError()])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome() if callable(outcome) else outcome

    def cancel(self, terminate_containers=False):
        self.cancels.append(terminate_containers)

    @classmethod
    def from_id(cls, function_call_id, client=None):
        FakeFunction.reattached.append(function_call_id)
        return cls.made[function_call_id]


class FakeFunction:
    """Stands in for modal.Function (a deployed one, after lookup)."""

    reattached: typing.ClassVar[list] = []

    def __init__(self, outcomes=(), options=None):
        self.outcomes, self.options = outcomes, options or {}
        self.spawned, self.variants = [], []

    def with_options(self, *, cpu=None, memory=None, gpu=None, env=None, secrets=None, volumes={}, retries=None,  # noqa: B006 - the SDK's own default
                     max_containers=None, buffer_containers=None, scaledown_window=None, timeout=None, region=None,
                     cloud=None, routing_region=None):
        variant = FakeFunction(self.outcomes, {"gpu": gpu, "timeout": timeout})
        variant.spawned = self.spawned
        self.variants.append(variant)
        return variant

    def spawn(self, *args, **kwargs):
        self.spawned.append((self.options, args, kwargs))
        return FakeCall(f"fc-{len(FakeCall.made)}", self.outcomes)


class FakePrepare:
    def __init__(self, sandbox):
        self.sandbox, self.calls = sandbox, []

    def remote(self, data, files):
        self.calls.append((data, files))
        return {"fingerprint": "abc-1", "sandbox": self.sandbox, "sandbox_note": "bwrap: test"}


def _params(function):
    params = list(inspect.signature(function).parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return [(p.name, p.kind) for p in params]


@pytest.mark.parametrize("fake, real", [
    (FakeFunction.spawn, modal.Function.spawn),
    (FakeFunction.with_options, modal.Function.with_options),
    (FakeCall.get, modal.FunctionCall.get),
    (FakeCall.cancel, modal.FunctionCall.cancel),
    (FakeCall.from_id, modal.FunctionCall.from_id),
])
def test_the_stand_ins_match_the_installed_sdk(fake, real):
    assert _params(fake) == _params(real)
    assert hasattr(modal.FunctionCall, "object_id")


def make_experiment(tmp_path, seed=42, train="print('hi')\n", **fields):
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(train)
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    values = {"id": 3, "commit": "c0ffee", "source_dir": str(source), "work_dir": str(tmp_path / "work"),
              "command": "python train.py", "metric": "val_bpb", "budget_seconds": 300.0, "timeout_seconds": 600.0,
              "seed": seed, "data": "auto", "expected_harness": {}, "log_path": str(tmp_path / "logs" / "0003.log")}
    values.update(fields)
    return Experiment(**values)


def finished(billed=100.0, **extra):
    data = {"status": "ok", "metric": 1.23, "summary": {"val_bpb": 1.23}, "reason": "", "log_tail": "done",
            "timings": {"train_s": 90.0, "eval_s": 5.0, "total_s": 98.0, "container_start_s": 4.0, "billed_s": billed},
            "flags": [], "device": "NVIDIA H100 80GB HBM3", "isolation": "bwrap", "log_text": "step 1\nstep 2\n",
            "input_started_at": 1000.0 + 30.0, "code_digest": code_digest(), "container_inputs": 1}
    data.update(extra)
    return data


def runner_for(tmp_path, function, **kwargs):
    kwargs.setdefault("state_path", tmp_path / "state" / "modal-calls.json")
    return ModalRunner(function, "H100!", 0.001097, calls=FakeCall, wall=lambda: 1000.0, **kwargs)


def test_a_call_runs_then_finishes_with_its_cost_log_and_timings(tmp_path):
    function = FakeFunction([TimeoutError(), finished()])
    runner = runner_for(tmp_path, function)
    experiment = make_experiment(tmp_path)
    handle = runner.submit(experiment)

    (options, args, _kwargs), = function.spawned
    assert options == {"gpu": "H100!", "timeout": function_timeout(300.0, None, 600.0, None, 0)}
    spec, files = args
    assert spec == job_spec(experiment, ["run.sh"]) and spec["data"] == "parquet" and spec["executables"] == ["run.sh"]
    assert not any("/" in str(v) for k, v in spec.items() if k != "command")  # no local paths travel
    assert set(files) == {"train.py", "run.sh"} and files["train.py"] == b"print('hi')\n"
    state = json.loads(runner.state_path.read_text())
    assert list(state.values()) == [{"call_id": handle.call_id, "spawned_at": 1000.0, "experiment": 3}]

    assert handle.result(timeout=0.5) is None  # still running
    result = handle.result(timeout=0.5)
    assert result.status == "ok" and result.metric == 1.23 and result.isolation == "bwrap"
    assert result.cost_usd == pytest.approx(100.0 * 0.001097)
    assert result.timings["billed_s"] == 100.0 and result.timings["queued_s"] == 26.0  # 30 s after spawn, 4 of them booting
    assert (tmp_path / "logs" / "0003.log").read_text() == "step 1\nstep 2\n"
    assert json.loads(runner.state_path.read_text()) == {}  # read: nothing left to re-attach
    assert handle.result() is result and FakeCall.made[handle.call_id].gets == [0.5, 0.5]


def test_a_remote_exception_is_a_crash_that_names_it(tmp_path):
    runner = runner_for(tmp_path, FakeFunction([ValueError("CUDA error: out of memory\nmore")]))
    result = runner.submit(make_experiment(tmp_path)).result(timeout=1)
    assert result.status == "crash" and result.reason == "the Modal call failed: ValueError: CUDA error: out of memory"
    assert json.loads(runner.state_path.read_text()) == {}


@pytest.mark.parametrize("error, status, words", [
    (modal.exception.FunctionTimeoutError("Function timed out after 960s"), "timeout", "function timeout"),
    (modal.exception.OutputExpiredError(), "crash", "expired"),
])
def test_modal_timeouts_and_expired_results(tmp_path, error, status, words):
    result = runner_for(tmp_path, FakeFunction([error])).submit(make_experiment(tmp_path)).result(timeout=1)
    assert result.status == status and words in result.reason


def test_cancel_stops_the_call_and_its_container(tmp_path):
    runner = runner_for(tmp_path, FakeFunction([TimeoutError()]))
    handle = runner.submit(make_experiment(tmp_path))
    assert handle.result(timeout=0) is None
    handle.cancel()
    assert FakeCall.made[handle.call_id].cancels == [True]
    assert handle.result(timeout=0).status == "cancelled"
    assert json.loads(runner.state_path.read_text()) == {}  # a cancelled call is never re-attached


def test_a_restarted_bot_reattaches_instead_of_paying_again(tmp_path):
    function = FakeFunction([TimeoutError()])
    first = runner_for(tmp_path, function).submit(make_experiment(tmp_path))
    assert first.result(timeout=0) is None  # the bot dies here

    call = FakeCall.made[first.call_id]
    call.outcomes = [finished(billed=50.0)]
    again = runner_for(tmp_path, FakeFunction()).submit(make_experiment(tmp_path))  # a new process, same state file
    assert again.reattached and again.call_id == first.call_id and FakeFunction.reattached[-1] == first.call_id
    assert len(function.spawned) == 1
    assert again.result(timeout=1).cost_usd == pytest.approx(50.0 * 0.001097)

    third = runner_for(tmp_path, function).submit(make_experiment(tmp_path))  # result read: a new call
    assert not third.reattached and len(function.spawned) == 2


def test_another_seed_is_another_call(tmp_path):
    function = FakeFunction([TimeoutError()])
    runner = runner_for(tmp_path, function)
    one, two = runner.submit(make_experiment(tmp_path, seed=1)), runner.submit(make_experiment(tmp_path, seed=2))
    assert one.call_id != two.call_id and len(json.loads(runner.state_path.read_text())) == 2
    files = pack(tmp_path / "src")[0]
    assert run_key(job_spec(make_experiment(tmp_path, seed=1)), files) != run_key(job_spec(make_experiment(tmp_path)), files)


def test_a_call_that_never_starts_is_cancelled_after_its_allowance(tmp_path):
    now = [0.0]
    runner = runner_for(tmp_path, FakeFunction([TimeoutError()]), clock=lambda: now[0])
    handle = runner.submit(make_experiment(tmp_path, budget_seconds=2.0, timeout_seconds=60.0))
    assert handle.result(timeout=0) is None
    now[0] = function_timeout(2.0, None, 60.0) + QUEUE_ALLOWANCE_S + 1
    result = handle.result(timeout=0)
    assert result.status == "crash" and "no GPU free?" in result.reason and FakeCall.made[handle.call_id].cancels == [True]


def test_polling_rides_out_network_failures_then_gives_up(tmp_path):
    runner = runner_for(tmp_path, FakeFunction([modal.exception.ConnectionError("reset")]))
    handle = runner.submit(make_experiment(tmp_path))
    assert all(handle.result(timeout=0) is None for _ in range(MAX_POLL_FAILURES - 1))
    result = handle.result(timeout=0)
    assert result.status == "crash" and "may still finish remotely" in result.reason


def test_flags_for_an_unknown_price_and_an_old_deployment(tmp_path):
    price, known = gpu_price_per_second("Z100")
    runner = ModalRunner(FakeFunction([finished(code_digest="0" * 16)]), "Z100", price, price_known=known,
                         calls=FakeCall, wall=lambda: 1000.0)
    result = runner.submit(make_experiment(tmp_path)).result(timeout=1)
    assert result.cost_usd == pytest.approx(100.0 * max(GPU_PRICES.values()))
    assert "no price for GPU 'Z100': cost estimated at the dearest GPU's" in result.flags
    assert "the deployed job code differs from this checkout: run `modal deploy gpu_jobs/modal_app.py`" in result.flags


def test_too_many_bytes_are_refused_before_any_call(tmp_path):
    experiment = make_experiment(tmp_path)
    (tmp_path / "src" / "data.bin").write_bytes(b"x" * 2000)
    with pytest.raises(RunnerError, match=r"more than 0 MB.*largest: data.bin"):
        pack(experiment.source_dir, limit=1000)


@pytest.mark.parametrize("sandbox, requested, isolation", [(True, "auto", "bwrap"), (False, "auto", "container"),
                                                            (True, "none", "container")])
def test_prepare_learns_the_isolation_modal_gives(tmp_path, sandbox, requested, isolation):
    prepare = FakePrepare(sandbox)
    runner = runner_for(tmp_path, FakeFunction(), prepare_function=prepare)
    assert runner.isolation is None
    runner.prepare({"prepare.py": b"x"}, data="auto", isolation=requested)
    assert runner.isolation == isolation and prepare.calls == [("parquet", {"prepare.py": b"x"})]


def test_a_required_sandbox_that_cannot_start_on_modal_is_an_error(tmp_path):
    runner = runner_for(tmp_path, FakeFunction(), prepare_function=FakePrepare(False))
    with pytest.raises(BotError, match="`isolation: sandbox` is set but bubblewrap cannot start on Modal"):
        runner.prepare({}, isolation="sandbox")


def test_gpu_prices_come_from_one_table():
    assert gpu_price_per_second("H100!") == (0.001097, True)
    assert gpu_price_per_second("h100") == (0.001097, True)
    assert gpu_price_per_second("A100") == (GPU_PRICES["A100-40GB"], True)
    assert gpu_price_per_second("H100:2") == (0.002194, True)
    assert gpu_price_per_second("B300") == (max(GPU_PRICES.values()), False)


# ---- the job body behind a stand-in transport: the whole path on this CPU -------------------


def test_end_to_end_through_the_real_job_body(tmp_path, monkeypatch):
    """spawn() runs gpu_jobs.modal_app.execute in a thread, as a container would (trust mode, a toy
    train.py): the runner's RunResult comes from a real job result."""
    monkeypatch.setenv("AUTORESEARCH_MODAL_DATA_DIR", str(tmp_path / "volume"))
    train = textwrap.dedent("""\
        print("step 00001 (100.0%) | loss: 1.0", flush=True)
        print("---")
        print("val_bpb:          3.250000")
        print("training_seconds: 0.1")
        print("device:           cpu")
    """)
    experiment = make_experiment(tmp_path, train=train, budget_seconds=1.0, timeout_seconds=30.0, data="stdlib")

    class Running(FakeFunction):
        def with_options(self, **options):
            return self

        def spawn(self, *args, **kwargs):
            call = super().spawn(*args, **kwargs)
            outcome = {}
            worker = threading.Thread(target=lambda: outcome.setdefault("data", modal_app.execute(
                *args, data_dir=str(tmp_path / "volume"), compile_dir=str(tmp_path / "cc"),
                local_cache=str(tmp_path / "local"))))
            worker.start()

            def poll():
                if worker.is_alive():
                    raise TimeoutError  # what the SDK's get() raises while the call runs
                return outcome["data"]

            call.outcomes = [poll]
            return call

    handle = runner_for(tmp_path, Running()).submit(experiment)
    deadline = time.monotonic() + 60
    while (result := handle.result(timeout=0.1)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert result.status == "ok" and result.metric == 3.25, result.reason
    assert "trust mode: no harness result, the printed value was used" in result.flags
    assert {"train_s", "total_s", "setup_s", "function_s", "billed_s", "queued_s"} <= set(result.timings)
    assert result.cost_usd == pytest.approx(result.timings["billed_s"] * 0.001097, abs=1e-8)
    assert "val_bpb:          3.250000" in (tmp_path / "logs" / "0003.log").read_text()


# ---- preflight ---------------------------------------------------------------------------


def test_no_token_fails_at_once_and_touches_no_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("preflight opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    started = time.monotonic()
    with pytest.raises(BotError) as error:
        preflight(False, check=no_network)
    assert time.monotonic() - started < 0.5
    assert str(error.value) == NO_TOKEN
    assert "`modal token new`" in NO_TOKEN and "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET" in NO_TOKEN
    assert "--local" in NO_TOKEN


@pytest.mark.parametrize("error, words", [
    (modal.exception.NotFoundError("App 'autoresearch-bot' not found"), "run `modal deploy gpu_jobs/modal_app.py`"),
    (modal.exception.AuthError("Token ID is malformed"), "run `modal token new`"),
    (OSError("Connection refused"), "Modal could not be reached (OSError: Connection refused"),
])
def test_preflight_names_the_fix(error, words):
    def check():
        raise error

    with pytest.raises(BotError, match=".*".join(map(__import__("re").escape, [words, "--local"]))):
        preflight(True, check=check, timeout=5)


def test_a_lookup_that_hangs_is_given_up_in_time():
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(BotError, match=r"Modal did not answer within 0.5 s"):
        preflight(True, check=release.wait, timeout=0.5)
    assert time.monotonic() - started < 2
    release.set()
    assert preflight(True, check=lambda: "function", timeout=5) == "function"


def test_an_unreachable_endpoint_with_the_real_client_fails_within_the_timeout(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    env.update(HOME=str(tmp_path), MODAL_CONFIG_PATH=str(tmp_path / "none.toml"), PYTHONPATH=str(ROOT),
               MODAL_SERVER_URL=f"http://127.0.0.1:{port}", MODAL_TOKEN_ID="ak-fake", MODAL_TOKEN_SECRET="as-fake")
    code = ("from bot.runners.modal import preflight, token_configured\n"
            "try:\n    preflight(token_configured(), timeout=3)\n"
            "except Exception as e:\n    print(type(e).__name__ + ': ' + str(e))\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    elapsed = time.monotonic() - started
    assert done.stdout.startswith("BotError: Modal"), done.stdout + done.stderr
    assert f"127.0.0.1:{port}" in done.stdout and "--local" in done.stdout
    assert elapsed < 3 + 6  # the timeout plus interpreter start and import
