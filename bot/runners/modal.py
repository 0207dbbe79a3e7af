"""The Modal runner: each experiment is one call of the deployed `run_experiment` on a GPU
(gpu_jobs/modal_app.py). The only bot module that imports modal.

    runner = modal_runner(config, harness_files, state_path=...)   # preflight, lookup, data, isolation
    handle = runner.submit(experiment)   # packs the files, spawns (or re-attaches) the call
    handle.result(timeout)               # None until done; then a RunResult with cost = billed s x price
    handle.cancel()

The app is deployed (`modal deploy gpu_jobs/modal_app.py`), never run ephemerally: a deployed
function's calls outlive the bot, so a restarted bot re-attaches to the call it paid for (call ids
kept in `state_path`, keyed by the experiment's files, settings and seed) instead of paying twice.
"""

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import modal
import modal.exception

from bot.errors import BotError, RunnerError
from bot.pricing import gpu_price_per_second
from bot.runners import FinishedHandle, RunResult
from gpu_jobs.modal_app import APP_NAME, FUNCTION_NAME, code_digest, function_timeout

MAX_UPLOAD_BYTES = 50 * 1024**2  # an experiment's files travel with the call
QUEUE_ALLOWANCE_S = 1800.0  # past the function timeout: a call still unfinished is cancelled (no GPU free?)
MAX_POLL_FAILURES = 120  # consecutive network failures while polling before the run is given up
DEPLOY = "modal deploy gpu_jobs/modal_app.py"
PREFLIGHT_FUNCTION_NAME = "memory_preflight"  # CPU: the candidate's peak GPU memory, estimated before the GPU call
NO_TOKEN = ("no Modal token: run `modal token new` (or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET), "
            "or pass --local to train on this machine")


def token_configured():
    """Whether a Modal token is set (MODAL_TOKEN_ID/SECRET or ~/.modal.toml); reads no network."""
    from modal.config import config

    return bool(config.get("token_id") and config.get("token_secret"))


def lookup():
    """The deployed functions (a network round trip; preflight bounds its time)."""
    run = modal.Function.from_name(APP_NAME, FUNCTION_NAME)
    run.hydrate()
    return run, modal.Function.from_name(APP_NAME, "prepare_data")


def preflight(has_token, check=None, timeout=10.0):
    """Fail before any experiment, in one clear line: no token (at once, no network), Modal
    unreachable (within `timeout` s: the SDK alone retries for about a minute), app not deployed.
    Returns what `check` (default: `lookup`) returns."""
    if not has_token:
        raise BotError(NO_TOKEN)
    outcome = {}

    def attempt():
        try:
            outcome["value"] = (check or lookup)()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=attempt, name="modal-preflight", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise BotError(f"Modal did not answer within {timeout:g} s ({_server()}): check the network "
                       "or MODAL_SERVER_URL, or pass --local to train on this machine")
    error = outcome.get("error")
    if isinstance(error, modal.exception.NotFoundError):
        raise BotError(f"the Modal app `{APP_NAME}` is not deployed in this workspace: run `{DEPLOY}` "
                       "(again after changing gpu_jobs/), or pass --local") from error
    if isinstance(error, modal.exception.AuthError):
        raise BotError(f"Modal refused the token ({_first_line(error)}): run `modal token new` or set "
                       "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET, or pass --local") from error
    if error is not None:
        raise BotError(f"Modal could not be reached ({type(error).__name__}: {_first_line(error)}; "
                       f"{_server()}): check the network, or pass --local") from error
    return outcome["value"]


def modal_runner(config, harness_files, *, on_line=None, state_path=None, isolation=None, timeout=10.0):
    """What `bot run` without --local calls: preflight, the deployed functions, the data on the
    volume, the isolation Modal gives; then the runner, ready for the loop."""
    run, prepare = preflight(token_configured(), timeout=timeout)
    price, known = gpu_price_per_second(config.gpu)
    memory = modal.Function.from_name(APP_NAME, PREFLIGHT_FUNCTION_NAME) if config.memory_preflight else None
    runner = ModalRunner(run, config.gpu, price, on_line=on_line, state_path=state_path, prepare_function=prepare,
                         price_known=known, memory_function=memory)
    runner.prepare(harness_files, data=config.data, isolation=isolation or config.isolation)
    return runner


def _server():
    from modal.config import config

    return f"server {config.get('server_url')}"


def _first_line(error):
    return (str(error).strip().splitlines() or [""])[0][:300]


def resolve_data(data):
    return "parquet" if data in (None, "", "auto") else data  # on Modal there is always a GPU


def pack(source_dir, limit=MAX_UPLOAD_BYTES):
    """({relative path: bytes}, [executable paths]) of the experiment's regular files."""
    files, executables, sizes = {}, [], []
    root = Path(source_dir)
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():
                continue
            relative = path.relative_to(root).as_posix()
            sizes.append((path.stat().st_size, relative))
            if sum(size for size, _ in sizes) > limit:
                biggest = ", ".join(f"{n} ({s / 1e6:.1f} MB)" for s, n in sorted(sizes, reverse=True)[:3])
                raise RunnerError(f"the experiment's files are more than {limit / 1e6:.0f} MB, too much to send "
                                  f"with a Modal call (largest: {biggest}): keep data out of the repository "
                                  "(the harness fetches it) or use --local")
            files[relative] = path.read_bytes()
            if os.access(path, os.X_OK):
                executables.append(relative)
    return files, executables


def job_spec(experiment, executables=()):
    """The JobSpec fields the remote job gets (paths are chosen there)."""
    e = experiment
    return {"command": e.command, "budget_seconds": float(e.budget_seconds), "timeout_seconds": float(e.timeout_seconds),
            "seed": int(e.seed), "data": resolve_data(e.data), "metric": e.metric,
            "expected_harness": dict(e.expected_harness), "metric_regex": e.metric_regex or "", "gate": e.gate or "",
            "gate_timeout_seconds": float(e.gate_timeout_seconds), "isolation": e.isolation,
            "startup_seconds": e.startup_seconds, "budget_steps": e.budget_steps, "executables": sorted(executables)}


def run_key(spec, files):
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:32]


class ModalRunner:
    name = "modal"

    def __init__(self, function, gpu, price_per_second, on_line=None, state_path=None, clock=time.monotonic, *,
                 prepare_function=None, price_known=True, calls=None, wall=time.time, memory_function=None):
        self.function, self.gpu, self.price, self.price_known = function, gpu, float(price_per_second), price_known
        self.on_line, self.clock, self.wall = on_line, clock, wall
        self.state_path = Path(state_path) if state_path else None
        self.prepare_function = prepare_function
        self.memory_function = memory_function  # None: no memory preflight
        self.calls = calls or modal.FunctionCall  # whose from_id re-attaches
        self.isolation = None  # bwrap | container, once `prepare` asked Modal
        self.data_meta = None
        self._lock = threading.Lock()
        self._variants = {}
        self._memory_verdicts = {}  # run key without the seed -> a conclusive preflight (replicates share it)

    def prepare(self, harness_files, data="auto", isolation="auto"):
        """Make the data splits on the volume (CPU, once per harness and source) and learn whether
        bwrap starts in Modal's runtime. Call before the loop: its key holds the isolation."""
        meta = self.prepare_function.remote(resolve_data(data), dict(harness_files))
        sandboxed = bool(meta.get("sandbox")) and isolation != "none"
        if isolation == "sandbox" and not sandboxed:
            raise BotError(f"`isolation: sandbox` is set but bubblewrap cannot start on Modal ({meta.get('sandbox_note')}); "
                           "set `isolation: auto` to run each experiment in a single-use container instead, or use --local")
        self.isolation, self.data_meta = ("bwrap" if sandboxed else "container"), meta
        return meta

    def submit(self, experiment):
        files, executables = pack(experiment.source_dir)
        spec = job_spec(experiment, executables)
        key = run_key(spec, files)
        with self._lock:
            entry = self._load().get(key)
        if entry:
            call, reattached = self.calls.from_id(entry["call_id"]), True
        else:
            checked = self.check_memory(experiment, spec, files)
            if checked.get("status", "ok") != "ok":  # refused: no GPU call at all
                return FinishedHandle(RunResult(
                    status=checked["status"] if checked["status"] in ("crash", "cancelled") else "crash",
                    reason=checked.get("reason") or "refused by the memory preflight",
                    flags=tuple(checked.get("flags") or ()), timings=dict(checked.get("timings") or {}),
                    log_tail=checked.get("log_tail") or "", isolation=self.isolation))
            call, reattached = self._variant(experiment).spawn(spec, files), False
            entry = {"call_id": call.object_id, "spawned_at": self.wall(), "experiment": experiment.id}
            if checked:
                entry["preflight"] = checked
            self._remember(key, entry)
        limit = function_timeout(experiment.budget_seconds, experiment.startup_seconds, experiment.timeout_seconds,
                                 experiment.budget_steps, experiment.gate_timeout_seconds if experiment.gate else 0)
        return ModalHandle(self, experiment, call, key, entry, reattached, deadline=self.clock() + limit + QUEUE_ALLOWANCE_S)

    def check_memory(self, experiment, spec, files):
        """The memory preflight on Modal's CPU (the deployed `memory_preflight`) before the GPU call:
        {status, reason, flags, preflight, timings}; a call that fails decides nothing (flagged)."""
        if self.memory_function is None or not experiment.memory_preflight or spec["metric"] != "val_bpb" or \
                spec["metric_regex"] or "prepare.py" not in spec["expected_harness"]:
            return {}
        key = run_key(dict(spec, seed=None), files)  # the estimate depends on the files, not the seed
        if key in self._memory_verdicts:
            return dict(self._memory_verdicts[key])
        try:
            checked = dict(self.memory_function.remote(dict(spec, gpu=self.gpu, data_bytes=int(
                (self.data_meta or {}).get("train_bytes") or 0)), files))
            if (checked.get("preflight") or {}).get("verdict") in ("fits", "refused"):
                self._memory_verdicts[key] = checked
            return dict(checked)
        except Exception as exc:  # noqa: BLE001 - a cost guard that cannot run must not stop the night
            return {"flags": [f"memory preflight not run ({type(exc).__name__}: {_first_line(exc)}); "
                              f"`{DEPLOY}` deploys it"]}

    def _variant(self, experiment):
        """The function with this night's GPU and a timeout from the budget (Function.with_options)."""
        timeout = function_timeout(experiment.budget_seconds, experiment.startup_seconds, experiment.timeout_seconds,
                                   experiment.budget_steps, experiment.gate_timeout_seconds if experiment.gate else 0)
        if timeout not in self._variants:
            self._variants[timeout] = self.function.with_options(gpu=self.gpu, timeout=timeout)
        return self._variants[timeout]

    # ---- the state file: {run key: {call_id, spawned_at, experiment}} --------------------------

    def _load(self):
        if not self.state_path or not self.state_path.exists():
            return {}
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, state):
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        os.replace(partial, self.state_path)

    def _remember(self, key, entry):
        if self.state_path:
            with self._lock:
                self._save(dict(self._load(), **{key: entry}))

    def forget(self, key):
        if self.state_path:
            with self._lock:
                state = self._load()
                if state.pop(key, None) is not None:
                    self._save(state)

    # ---- a finished call -> RunResult ----------------------------------------------------------

    def to_result(self, experiment, data, entry):
        text = data.get("log_text") or ""
        if experiment.log_path:
            Path(experiment.log_path).parent.mkdir(parents=True, exist_ok=True)
            Path(experiment.log_path).write_text(text, encoding="utf-8")
        if self.on_line:
            for line in text.splitlines()[-50:]:
                self.on_line(line)
        timings = dict(data.get("timings") or {})
        billed = float(timings.get("billed_s") or 0.0)
        started, spawned = data.get("input_started_at"), entry.get("spawned_at")
        if started and spawned:  # two machines' wall clocks: good to about a second
            timings["queued_s"] = round(max(0.0, started - float(timings.get("container_start_s") or 0.0) - spawned), 3)
        timings["billed_s"] = billed
        checked = entry.get("preflight") or {}
        flags = list(checked.get("flags") or []) + list(data.get("flags") or [])
        if (checked.get("timings") or {}).get("preflight_s") is not None:
            timings["preflight_s"] = checked["timings"]["preflight_s"]
        if not self.price_known:
            flags.append(f"no price for GPU {self.gpu!r}: cost estimated at the dearest GPU's")
        if data.get("code_digest") and data["code_digest"] != code_digest():
            flags.append(f"the deployed job code differs from this checkout: run `{DEPLOY}`")
        return RunResult.from_job(dict(data, timings=timings, flags=flags), cost_usd=round(billed * self.price, 8))


class ModalHandle:
    def __init__(self, runner, experiment, call, key, entry, reattached, deadline):
        self.runner, self.experiment, self.call, self.key, self.entry = runner, experiment, call, key, entry
        self.reattached, self.deadline = reattached, deadline
        self._final = None
        self._cancelled = False
        self._failures = 0

    @property
    def call_id(self):
        return self.entry["call_id"]

    def result(self, timeout=None):
        """The RunResult, or None while the call runs (Modal's get raises TimeoutError then)."""
        if self._final is not None:
            return self._final
        if self._cancelled:
            return self._finish(RunResult(status="cancelled", reason="stopped by the user"))
        try:
            data = self.call.get(timeout=timeout)
        except modal.exception.FunctionTimeoutError as exc:
            return self._finish(RunResult(status="timeout", reason=f"Modal stopped the call at its function timeout: "
                                                                   f"{_first_line(exc)}"))
        except modal.exception.OutputExpiredError:
            return self._finish(RunResult(status="crash", reason=f"Modal no longer holds the result of call "
                                                                 f"{self.call_id} (expired); run the experiment again"))
        except TimeoutError:  # the builtin one: not finished yet
            self._failures = 0
            if self.runner.clock() > self.deadline:
                self.cancel()
                return self._finish(RunResult(status="crash", reason=f"call {self.call_id} had no result "
                                              f"{QUEUE_ALLOWANCE_S:g} s past its timeout (no GPU free?); it was cancelled"))
            return None
        except (modal.exception.ConnectionError, ConnectionError) as exc:
            self._failures += 1
            if self._failures < MAX_POLL_FAILURES:
                return None
            return self._finish(RunResult(status="crash", reason=f"Modal unreachable while waiting for call "
                                          f"{self.call_id}: {_first_line(exc)}; the call may still finish remotely"))
        except Exception as exc:  # noqa: BLE001 - a remote failure is this experiment's crash row
            return self._finish(RunResult(status="crash", reason=f"the Modal call failed: {type(exc).__name__}: "
                                                                 f"{_first_line(exc)}"))
        return self._finish(self.runner.to_result(self.experiment, data, self.entry))

    def cancel(self):
        """Stop the call and its container (terminating it is what surely stops the training)."""
        self._cancelled = True
        try:
            self.call.cancel(terminate_containers=True)
        finally:
            self.runner.forget(self.key)

    def _finish(self, result):
        self._final = result
        self.runner.forget(self.key)
        return result
