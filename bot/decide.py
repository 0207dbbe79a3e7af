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


# ---- noise-aware -------------------------------------------------------------------------
# One number per side is what greedy compares; a noisy benchmark then keeps lucky seeds. The
# noise-aware rule compares means over seed replicates and asks the gain to clear the noise
# of that comparison: improvement > max(min_delta, z · se), where se = σ·sqrt(1/n + 1/m) is
# the standard error of a difference of two means (σ: one run's noise, measured from
# replicates). Candidates that look better but not clearly so get confirmation runs.

CONFIRM = "confirm"
RULES = ("greedy", "noise-aware")


@dataclasses.dataclass(frozen=True)
class NoiseParams:
    z: float = 2.0  # how many standard errors the gain must clear
    min_delta: float = 0.0  # smallest gain worth keeping, whatever the noise
    grey: float = 0.5  # gains above grey·threshold (and > 0) earn a confirmation run
    max_samples: int = 3  # runs of one candidate at most (1 + confirmations)


def mean(values):
    return sum(values) / len(values)


def robust_sigma(groups):
    """One run's noise σ from replicate groups (each: metrics of one commit, fresh seeds).

    Uses the median absolute pairwise difference within groups: for two draws of
    N(μ, σ²) the difference is N(0, 2σ²), whose median |value| is 0.6745·√2·σ. A single
    crashed-but-finite outlier moves a median far less than a standard deviation. None
    when no group has two finite samples (the noise is unknown).
    """
    diffs = []
    for group in groups:
        values = [v for v in group if _finite(v)]
        diffs += [abs(a - b) for i, a in enumerate(values) for b in values[i + 1:]]
    if not diffs:
        return None
    diffs.sort()
    middle = len(diffs) // 2
    median = diffs[middle] if len(diffs) % 2 else (diffs[middle - 1] + diffs[middle]) / 2
    return median / (0.6744897501960817 * math.sqrt(2))


def decide_noise_aware(samples, reference, sigma, direction="minimize", params=NoiseParams()):
    """Keep, discard or confirm a candidate from its finite `samples` vs the head's `reference`.

    sigma: one run's noise (robust_sigma), or None when unknown. Returns a Decision whose
    status is KEEP, DISCARD or CONFIRM (run once more with a fresh seed, then call again
    with the pooled samples).
    """
    samples = [v for v in samples if _finite(v)]
    reference = [v for v in reference if _finite(v)]
    if not samples:
        raise ValueError("no finite sample of the candidate: decide crashes before calling this")
    if not reference:
        raise ValueError("the tracking head has no finite sample: measure a baseline first")
    if sigma is not None and not (_finite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0 or None, got {sigma!r}")
    n, m = len(samples), len(reference)
    value, best_before = mean(samples), mean(reference)
    gain = improvement(value, best_before, direction)
    se = None if sigma is None else sigma * math.sqrt(1 / n + 1 / m)
    threshold = max(params.min_delta, params.z * se) if se is not None else params.min_delta
    evidence = {
        "rule": "noise-aware", "direction": direction, "value": value, "best_before": best_before,
        "n": n, "n_before": m, "samples": list(samples), "sigma": sigma, "se": se, "z": params.z,
        "min_delta": params.min_delta, "threshold": threshold, "delta": value - best_before,
        "improvement": gain,
        "delta_sigma": (value - best_before) / sigma if sigma else None,
        "z_score": gain / se if se else None,
    }
    means = f"mean of {n} run(s) {value:.6f} vs head {best_before:.6f} ({m} run(s))"
    if sigma is None:
        noise = "noise unknown (no replicates yet)"
    else:
        noise = f"σ {sigma:.4f}, needs > {threshold:.6f}"
    if gain > threshold:
        return Decision(KEEP, f"{means}: better by {gain:.6f}; {noise}", evidence)
    if gain > 0 and gain > params.grey * threshold and n < params.max_samples:
        return Decision(CONFIRM, f"{means}: better by {gain:.6f} but within the noise ({noise}); "
                                 "confirming with a fresh seed", evidence)
    if gain > 0:
        return Decision(DISCARD, f"{means}: better by {gain:.6f}, not beyond the noise ({noise})", evidence)
    if gain == 0:
        return Decision(DISCARD, f"{means}: no gain", evidence)
    return Decision(DISCARD, f"{means}: worse by {-gain:.6f}", evidence)


def decide_runs(run_status, samples, reference, sigma, direction="minimize", rule="noise-aware",
                params=NoiseParams(), crash_reason=""):
    """The loop's entry point: the latest run's status, the candidate's metrics so far, and
    the head's replicate metrics. Greedy compares the candidate's mean with the head's mean
    (with one sample each, that is autoresearch's rule exactly)."""
    if rule not in RULES:
        raise ValueError(f"unknown decision rule {rule!r}; choose one of {', '.join(RULES)}")
    latest = samples[-1] if samples else None
    before = [v for v in reference if _finite(v)]
    best_before = mean(before) if before else None
    if run_status != "ok" or not _finite(latest):
        decision = decide(run_status, latest, best_before, direction, "greedy", crash_reason)
        decision.evidence["rule"] = rule
        return decision
    if rule == "noise-aware":
        return decide_noise_aware(samples, reference, sigma, direction, params)
    finite = [v for v in samples if _finite(v)]
    decision = decide("ok", mean(finite), best_before, direction, "greedy")
    decision.evidence.update(n=len(finite), n_before=len(before), samples=finite, sigma=sigma,
                             delta_sigma=decision.evidence["delta"] / sigma if sigma else None)
    return decision
