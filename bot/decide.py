"""Keep, discard or crash: the decision for one evaluated change, with its evidence. Pure.

`greedy` is autoresearch's rule: keep only when the metric is strictly better than the
tracking head's. Every decision carries the numbers it was made on, so a PR body, the
ledger and `bot status` can show why.
"""

import dataclasses
import math

from bot.stats import f_sf, normal_cdf, t_quantile

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
# of that comparison: improvement > max(min_delta, t · se). σ is pooled over every repeated
# commit of the segment, weighted by runs, and carries its degrees of freedom: t is the
# quantile at z's one-sided level for those df, so a σ from 3 runs raises the bar instead of
# being taken as exact, and the bar settles as the segment gathers runs. The candidate's runs
# join the pool when their spread agrees with it (a pooled t test); when they spread
# significantly more (F test), the candidate is judged on its own spread (Welch) and the
# evidence says `noisier`: a change that only makes the measurement noisier needs a gain beyond
# its own noise. Candidates that look better but not clearly so (more than grey·z standard
# errors) get confirmation runs.

CONFIRM = "confirm"
RULES = ("greedy", "noise-aware")


@dataclasses.dataclass(frozen=True)
class NoiseParams:
    z: float = 2.0  # the bar in standard errors when σ is known exactly; its one-sided level sets t
    min_delta: float = 0.0  # smallest gain worth keeping, whatever the noise
    grey: float = 0.5  # gains above grey·z standard errors (and > 0) earn a confirmation run
    max_samples: int = 3  # runs of one candidate at most (1 + confirmations)
    noisier_p: float = 0.05  # F-test level at which a side's spread counts as larger than the prior's


class Sigma(float):
    """One run's noise σ and the degrees of freedom it rests on (inf: taken as exact).

    A float, so every place that shows or stores σ keeps working; `df` travels with it to the
    rule, where few degrees of freedom mean a wider t quantile."""

    def __new__(cls, value, df=math.inf):
        self = super().__new__(cls, value)
        self.df = df
        return self


def mean(values):
    return sum(values) / len(values)


def variance(values):
    """Sample variance (n - 1); None below two values."""
    if len(values) < 2:
        return None
    centre = mean(values)
    return sum((v - centre) ** 2 for v in values) / (len(values) - 1)


def pooled_sigma(groups, p=NoiseParams.noisier_p):
    """One run's noise σ from every replicate group, weighted by its runs: the pooled variance
    Σ(nᵢ−1)sᵢ² / Σ(nᵢ−1), as a Sigma whose df is Σ(nᵢ−1). A group whose spread is significantly
    larger than the pool of the others (F test at `p`: a commit that made the measurement
    noisier) is left out, so one noisy change does not raise every later bar. None when no
    group has two finite samples."""
    stats = []
    for group in groups:
        values = [v for v in group if _finite(v)]
        if len(values) >= 2:
            stats.append((len(values) - 1, variance(values)))
    if not stats:
        return None
    total_df = sum(df for df, _ in stats)
    total_ss = sum(df * var for df, var in stats)
    kept_df, kept_ss = total_df, total_ss
    for df, var in stats:
        rest_df, rest_ss = total_df - df, total_ss - df * var
        if rest_df <= 0:
            continue
        rest = rest_ss / rest_df
        if var > 0 and (rest == 0 or f_sf(var / rest, df, rest_df) < p):
            kept_df, kept_ss = kept_df - df, kept_ss - df * var
    if kept_df <= 0:  # every group is an outlier to the others: nothing to leave out
        kept_df, kept_ss = total_df, total_ss
    return Sigma(math.sqrt(kept_ss / kept_df), kept_df)


def _welch_df(terms):
    """Welch–Satterthwaite degrees of freedom of a sum of variance terms [(term, df)]."""
    total = sum(t for t, _ in terms)
    denominator = sum(t * t / df for t, df in terms if not math.isinf(df) and df > 0)
    return total * total / denominator if total > 0 and denominator > 0 else math.inf


def _noise_of_difference(samples, m, sigma, p):
    """(se, df, noisier, F-test p) of mean(candidate) − mean(head).

    The head's runs are already in the segment's pool (sigma). The candidate's are new: when
    their spread agrees with the pool they join it (a pooled-variance t test on df + n − 1
    degrees of freedom); when it is significantly larger (F test at `p`), the candidate is
    judged on its own spread, unshrunk, against the pool's for the head (Welch)."""
    n, own = len(samples), variance(samples)
    if sigma is None:  # nothing repeated in the segment yet: the candidate's own runs, if any
        if own is None:
            return None, None, False, None
        return math.sqrt(own * (1 / n + 1 / m)), n - 1, False, None
    prior_var, prior_df = float(sigma) ** 2, getattr(sigma, "df", math.inf)
    if own is None:
        return math.sqrt(prior_var * (1 / n + 1 / m)), prior_df, False, None
    k = n - 1
    p_value = (0.0 if own > 0 else 1.0) if prior_var == 0 else f_sf(own / prior_var, k, prior_df)
    if p_value < p:
        terms = [(own / n, k), (prior_var / m, prior_df)]
        return math.sqrt(sum(t for t, _ in terms)), _welch_df(terms), True, p_value
    if math.isinf(prior_df):
        return math.sqrt(prior_var * (1 / n + 1 / m)), prior_df, False, p_value
    pooled = (prior_df * prior_var + k * own) / (prior_df + k)
    return math.sqrt(pooled * (1 / n + 1 / m)), prior_df + k, False, p_value


def decide_noise_aware(samples, reference, sigma, direction="minimize", params=NoiseParams()):
    """Keep, discard or confirm a candidate from its finite `samples` vs the head's `reference`.

    sigma: one run's noise in this segment (a Sigma from pooled_sigma, whose df sets how far
    it is trusted; a plain number counts as exact), or None when unknown. Returns a Decision
    whose status is KEEP, DISCARD or CONFIRM (run once more with a fresh seed, then call again
    with the pooled samples). A grey-zone discard carries evidence["near_miss"] = True.
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
    prior_df = getattr(sigma, "df", math.inf)
    se, df, noisier, p_x = _noise_of_difference(samples, m, sigma, params.noisier_p)
    t_crit = None if se is None else params.z if math.isinf(df) else t_quantile(normal_cdf(params.z), df)
    threshold = params.min_delta if se is None else max(params.min_delta, t_crit * se)
    own = variance(samples)
    evidence = {
        "rule": "noise-aware", "direction": direction, "value": value, "best_before": best_before,
        "n": n, "n_before": m, "samples": list(samples), "sigma": None if sigma is None else float(sigma),
        "sigma_df": None if sigma is None or math.isinf(prior_df) else prior_df,
        "sd": None if own is None else math.sqrt(own), "se": se, "z": params.z,
        "df": None if df is None or math.isinf(df) else df, "t": t_crit,
        "min_delta": params.min_delta, "threshold": threshold, "delta": value - best_before,
        "improvement": gain,
        "delta_sigma": (value - best_before) / sigma if sigma else None,
        "z_score": gain / se if se else None,
        "noisier": noisier, "noisier_p": p_x, "near_miss": False,
    }
    means = f"mean of {n} run(s) {value:.6f} vs head {best_before:.6f} ({m} run(s))"
    if se is None:
        noise = "noise unknown (no replicates yet)"
    else:
        noise = f"σ {sigma:.4f}, " if sigma is not None else ""
        noise += f"needs > {threshold:.6f}"
        if t_crit is not None and t_crit != params.z:
            noise += f" (t {t_crit:.2f} on {df:.0f} df)"
    if noisier:
        noise += (f"; its runs spread more than this segment's noise (sd {math.sqrt(own):.4f}, "
                  f"F-test p {p_x:.3f}): judged on its own spread")
    if gain > threshold:
        return Decision(KEEP, f"{means}: better by {gain:.6f}; {noise}", evidence)
    # The grey zone is measured in standard errors, not in the t-widened bar: a σ resting on few
    # runs should ask for more runs, not discard what more runs would confirm.
    grey = gain > 0 and gain > params.grey * (params.z * se if se else threshold)
    if grey and n < params.max_samples:
        return Decision(CONFIRM, f"{means}: better by {gain:.6f} but within the noise ({noise}); "
                                 "confirming with a fresh seed", evidence)
    if gain > 0:
        # a near miss may be worth proposing again later (the offline proposer reads this flag)
        evidence["near_miss"] = grey and not noisier
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
