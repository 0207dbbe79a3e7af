"""The runner contract: `submit(experiment) -> handle`; `handle.result(timeout)`, `handle.cancel()`.

Runners differ only in where `gpu_jobs.job.run_job` executes (a subprocess here, a GPU
service elsewhere); what goes in (`Experiment`) and what comes out (`RunResult`) is the same.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Experiment:
    id: int
    commit: str
    source_dir: str  # the commit's files, materialized
    work_dir: str  # scratch space for the result file and log
    command: str
    metric: str
    budget_seconds: float
    timeout_seconds: float
    seed: int
    data: str
    expected_harness: dict
    log_path: str
    metric_regex: str = None  # None: `metric` is a key of the summary block
    gate: str = None  # a command that must pass first; its failure is status `gate-failed`
    gate_timeout_seconds: float = 300.0
    isolation: str = "auto"  # auto | sandbox | none (see gpu_jobs/sandbox.py)
    startup_seconds: float = None  # the train phase stops at budget + this (None: the job's default)
    budget_steps: int = None  # counted training steps instead of budget_seconds (then the limit is the timeout)
    readable: tuple = ()  # extra read-only paths for the experiment (`~` is the machine's home)
    memory_preflight: bool = False  # estimate the GPU profile's peak memory first; refuse what would not fit


@dataclasses.dataclass(frozen=True)
class RunResult:
    status: str  # ok | crash | timeout | cancelled | gate-failed
    metric: float = None
    summary: dict = None
    reason: str = ""
    log_tail: str = ""
    timings: dict = dataclasses.field(default_factory=dict)
    peak_memory_mb: float = 0.0
    cost_usd: float = 0.0
    exit_code: int = None
    device: str = None
    metric_source: str = None
    flags: tuple = ()
    harness_result: dict = None
    isolation: str = None  # what the run actually had: bwrap | none
    seed: int = None  # set when the run was taken back from an earlier, killed bot (bot/runcache.py)

    @classmethod
    def from_job(cls, data, cost_usd=0.0):
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["flags"] = tuple(values.get("flags") or ())
        return cls(cost_usd=cost_usd, **{k: v for k, v in values.items() if k != "cost_usd"})


class FinishedHandle:
    """The handle of a run whose result is already known (scripted runs in tests and benchmarks)."""

    def __init__(self, result):
        self._result = result

    def result(self, timeout=None):
        return self._result

    def cancel(self):
        pass


class RecordOnlyRunner:
    """For commands that only record requests (`bot command --queue`): no GPU, no Modal token, and
    any attempt to train is a bug that says so instead of running somewhere unexpected."""

    name = "none"
    isolation = None

    def submit(self, experiment):
        raise RuntimeError("bot command --queue records requests only; `bot run` does the training")
