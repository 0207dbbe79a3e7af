"""bot.decide noise-aware rule, robust σ and the loop's entry point, table-driven."""

import math

import pytest

from bot.decide import CONFIRM, CRASH, DISCARD, KEEP, NoiseParams, decide_noise_aware, decide_runs, robust_sigma

NAN = float("nan")
SIG = 0.6744897501960817 * math.sqrt(2)  # median |difference| of two N(0, 1) draws


@pytest.mark.parametrize(
    "groups, expected",
    [
        ([[3.0, 3.0, 3.0]], 0.0),  # deterministic runs: σ = 0
        ([[3.0]], None),  # n = 1: unknown
        ([], None),
        ([[3.0], [4.0]], None),  # single samples of different commits say nothing about noise
        ([[3.0, 3.0 + SIG]], 1.0),  # one pair
        ([[1.0, 1.0 + SIG], [5.0, 5.0 + SIG], [9.0, 9.0 + 100 * SIG]], 1.0),  # the outlier pair is outvoted
        ([[3.0, NAN, 3.0 + SIG]], 1.0),  # non-finite samples are ignored
        ([[3.0, None, 3.0 + 2 * SIG]], 2.0),
    ],
    ids=["zero", "n1", "empty", "singletons", "pair", "outlier", "nan", "none"],
)
def test_robust_sigma(groups, expected):
    sigma = robust_sigma(groups)
    if expected is None:
        assert sigma is None
    else:
        assert sigma == pytest.approx(expected)


P = NoiseParams(z=2.0, min_delta=0.0, grey=0.5, max_samples=3)

# reference of 3 samples with mean 3.5; with σ = 0.03 and n = 1: se = 0.03·sqrt(4/3) = 0.03464,
# threshold = 0.06928, grey zone (0.03464, 0.06928].
REF = [3.49, 3.50, 3.51]


@pytest.mark.parametrize(
    "samples, reference, sigma, direction, params, status, reason_part",
    [
        ([3.40], REF, 0.03, "minimize", P, KEEP, "better by 0.100000"),
        ([3.45], REF, 0.03, "minimize", P, CONFIRM, "confirming with a fresh seed"),
        ([3.45, 3.44], REF, 0.03, "minimize", P, KEEP, "mean of 2 run(s)"),  # se shrinks with n
        ([3.45, 3.52, 3.49], REF, 0.03, "minimize", P, DISCARD, "not beyond the noise"),  # max_samples
        ([3.48], REF, 0.03, "minimize", P, DISCARD, "not beyond the noise"),  # below the grey zone
        ([3.50], REF, 0.03, "minimize", P, DISCARD, "no gain"),
        ([3.60], REF, 0.03, "minimize", P, DISCARD, "worse by 0.100000"),
        ([3.4999], REF, 0.0, "minimize", P, KEEP, "σ 0.0000"),  # deterministic: any gain is real
        ([3.4999], REF, 0.0, "minimize", NoiseParams(min_delta=0.01), DISCARD, "needs > 0.010000"),
        ([3.49], [3.5], None, "minimize", P, KEEP, "noise unknown"),  # n = 1 everywhere: min_delta only
        ([3.6], [3.5, 3.5, 3.5], 0.03, "maximize", P, KEEP, "better by 0.100000"),
        ([3.45], [3.5, 3.5, 3.5], 0.03, "maximize", P, DISCARD, "worse by 0.050000"),
        ([3.40, NAN], REF, 0.03, "minimize", P, KEEP, "mean of 1 run(s)"),  # non-finite samples dropped
        ([3.45], REF, 0.03, "minimize", NoiseParams(max_samples=1), DISCARD, "not beyond"),
    ],
    ids=["clear-keep", "grey-confirm", "confirmed-keep", "confirm-exhausted", "below-grey", "equal", "worse",
         "sigma-zero", "min-delta", "n1-unknown-sigma", "max-keep", "max-worse", "nan-sample", "no-confirmations"],
)
def test_noise_aware(samples, reference, sigma, direction, params, status, reason_part):
    decision = decide_noise_aware(samples, reference, sigma, direction, params)
    assert decision.status == status
    assert reason_part in decision.reason
    evidence = decision.evidence
    finite = [v for v in samples if isinstance(v, float) and not math.isnan(v)]
    assert evidence["rule"] == "noise-aware" and evidence["direction"] == direction
    assert evidence["n"] == len(finite) and evidence["n_before"] == len(reference)
    assert evidence["value"] == pytest.approx(sum(finite) / len(finite))
    assert evidence["best_before"] == pytest.approx(sum(reference) / len(reference))
    assert evidence["delta"] == pytest.approx(evidence["value"] - evidence["best_before"])
    assert evidence["sigma"] == sigma and evidence["z"] == params.z
    if sigma:
        assert evidence["delta_sigma"] == pytest.approx(evidence["delta"] / sigma)
        assert evidence["se"] == pytest.approx(sigma * math.sqrt(1 / len(finite) + 1 / len(reference)))
        assert evidence["z_score"] == pytest.approx(evidence["improvement"] / evidence["se"])
    else:
        assert evidence["delta_sigma"] is None and evidence["z_score"] is None


@pytest.mark.parametrize(
    "samples, reference, sigma, message",
    [([], REF, 0.03, "no finite sample"), ([NAN], REF, 0.03, "no finite sample"),
     ([3.4], [], 0.03, "measure a baseline first"), ([3.4], [NAN], 0.03, "measure a baseline first"),
     ([3.4], REF, -1.0, "sigma must be"), ([3.4], REF, NAN, "sigma must be")],
    ids=["no-samples", "nan-samples", "no-reference", "nan-reference", "negative-sigma", "nan-sigma"],
)
def test_noise_aware_bad_input(samples, reference, sigma, message):
    with pytest.raises(ValueError, match=message):
        decide_noise_aware(samples, reference, sigma)


@pytest.mark.parametrize(
    "run_status, samples, rule, status, reason_part",
    [
        ("ok", [3.45], "noise-aware", CONFIRM, "confirming"),
        ("ok", [3.45], "greedy", KEEP, "better than 3.500000 by 0.050000"),  # greedy vs the head's mean
        ("ok", [3.499], "greedy", KEEP, "better"),
        ("ok", [3.51], "greedy", DISCARD, "worse"),
        ("crash", [3.45, None], "noise-aware", CRASH, "exit 1"),  # a confirmation that crashes
        ("timeout", [None], "greedy", CRASH, "exit 1"),
        ("ok", [NAN], "noise-aware", CRASH, "not a finite number"),
        ("ok", [3.45, NAN], "noise-aware", CRASH, "not a finite number"),
    ],
    ids=["na-confirm", "greedy-keep", "greedy-tiny", "greedy-worse", "confirm-crash", "timeout", "nan", "nan-confirm"],
)
def test_decide_runs(run_status, samples, rule, status, reason_part):
    decision = decide_runs(run_status, samples, REF, 0.03, "minimize", rule, P, crash_reason="exit 1")
    assert decision.status == status
    assert reason_part in decision.reason
    assert decision.evidence["rule"] == rule
    if rule == "greedy" and status != CRASH:
        assert decision.evidence["n"] == 1 and decision.evidence["n_before"] == 3
        assert decision.evidence["delta_sigma"] == pytest.approx(decision.evidence["delta"] / 0.03)


def test_decide_runs_unknown_rule():
    with pytest.raises(ValueError, match="choose one of greedy, noise-aware"):
        decide_runs("ok", [3.4], REF, 0.03, rule="bayes")
