"""Keep, discard or crash: the decision for one evaluated change, with its evidence. Pure.

`greedy` is autoresearch's rule: keep only when the metric is strictly better than the
tracking head's. Every decision carries the numbers it was made on, so a PR body, the
ledger and `bot status` can show why.
"""

import dataclasses
import math

KEEP, DISCARD, CRASH = "keep", "discard", "crash"
GATE_FAILED = "gate-failed"  # the gate (e.g. the test suite) failed: the metric does not count


@dataclasses.dataclass(frozen=True)
class Decision:
    status: str
    reason: str
    evidence: dict


def improvement(value, reference, direction):
    """Positive when `value` is better than `reference` in the given direction."""
    return reference - value if direction == "minimize" else value - reference


def _finite(number):
    return number is not None and isinstance(number, (int, float)) and math.isfinite(number)


def decide(run_status, value, best_before, direction="minimize", rule="greedy", crash_reason=""):
    """Decide one run.

    run_status: the runner's status (`ok`, `crash`, `timeout`).
    value: the run's metric (None when there is none).
    best_before: the tracking head's metric, the one to beat.
    """
    evidence = {"rule": rule, "direction": direction, "value": value, "best_before": best_before}
    if run_status == GATE_FAILED:
        return Decision(GATE_FAILED, crash_reason or "the gate failed", evidence)
    if run_status == "timeout":
        return Decision(CRASH, crash_reason or "timed out", evidence)
    if run_status != "ok":
        return Decision(CRASH, crash_reason or "crashed", evidence)
    if not _finite(value):
        return Decision(CRASH, f"metric is {value!r}, not a finite number", evidence)
    if not _finite(best_before):
        raise ValueError("best_before must be a finite number: measure a baseline first")
    if rule != "greedy":
        raise ValueError(f"unknown decision rule {rule!r}")
    gain = improvement(value, best_before, direction)
    evidence["delta"] = value - best_before
    evidence["improvement"] = gain
    if gain > 0:
        return Decision(KEEP, f"better than {best_before:.6f} by {gain:.6f}", evidence)
    if gain == 0:
        return Decision(DISCARD, f"equal to {best_before:.6f}: not strictly better", evidence)
    return Decision(DISCARD, f"worse than {best_before:.6f} by {-gain:.6f}", evidence)
