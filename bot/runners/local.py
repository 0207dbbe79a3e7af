"""The local runner: the experiment trains in a subprocess on this machine (its GPU or CPU)."""

import os
import threading

from bot.runners import RunResult
from gpu_jobs.job import JobSpec, run_job


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
            expected_harness=e.expected_harness,
            result_path=os.path.join(e.work_dir, "harness_result.json"), log_path=e.log_path,
            metric_regex=e.metric_regex or "", gate=e.gate or "", gate_timeout_seconds=e.gate_timeout_seconds,
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

    def __init__(self, on_line=None):
        self.on_line = on_line

    def submit(self, experiment):
        return LocalHandle(experiment, self.on_line)
