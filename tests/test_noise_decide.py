"""bot.decide noise-aware rule, the pooled σ and the loop's entry point, table-driven."""

import math

import pytest

from bot.decide import (CONFIRM, CRASH, DISCARD, KEEP, NoiseParams, Sigma, decide_noise_aware, decide_runs,
                        pooled_sigma)

NAN = float("nan")


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


# ---- the pooled σ, its degrees of freedom, and what they do to the bar ---------------------

@pytest.mark.parametrize(
    "groups, sigma, df",
    [
        ([[3.50, 3.52, 3.48]], 0.02, 2),
        ([[3.50, 3.52, 3.48], [3.47, 3.46, 3.45]], math.sqrt((0.0008 + 0.0002) / 4), 4),  # weighted by runs
        ([[1.0, 1.02], [2.0, 2.02], [3.0, 3.02]], math.sqrt(0.0002), 3),
        # a commit that made the measurement 30× noisier is left out: it would raise every bar
        ([[1.0, 1.02], [2.0, 2.02], [3.0, 3.02], [4.0, 4.02], [5.0, 5.6]], math.sqrt(0.0002), 4),
        ([[3.0], [4.0]], None, None),
        ([[3.0, NAN, 3.02]], math.sqrt(0.0002), 1),
        ([[3.0, 3.0, 3.0]], 0.0, 2),
    ],
    ids=["baseline", "two-groups", "pairs", "noisy-group-left-out", "singletons", "nan", "deterministic"],
)
def test_pooled_sigma(groups, sigma, df):
    pooled = pooled_sigma(groups)
    if sigma is None:
        assert pooled is None
    else:
        assert pooled == pytest.approx(sigma) and pooled.df == df


@pytest.mark.parametrize(
    "sigma, t",
    [(0.03, 2.0), (Sigma(0.03, 2), 4.527), (Sigma(0.03, 30), 2.087)],
    ids=["exact", "2-df", "30-df"],
)
def test_few_degrees_of_freedom_widen_the_bar(sigma, t):
    evidence = decide_noise_aware([3.40], REF, sigma, params=P).evidence
    assert evidence["t"] == pytest.approx(t, abs=1e-3)
    assert evidence["threshold"] == pytest.approx(t * 0.03 * math.sqrt(1 + 1 / 3), rel=1e-3)


# The case: candidate runs [0.655, 0.884, 0.826] against head runs [0.775, 0.873, 1.010]
# with a pooled σ of 0.0097 were kept (a bar of 0.016) though their own sd is 0.118.
NOISY = [0.655, 0.884, 0.826]


@pytest.mark.parametrize(
    "samples, reference, sigma, status, noisier",
    [
        (NOISY, [0.775, 0.873, 1.010], Sigma(0.0097, 20), DISCARD, True),
        (NOISY, [0.775, 0.873, 1.010], 0.0097, DISCARD, True),  # an exact σ is no excuse either
        ([0.30, 0.45, 0.38], [0.775, 0.873, 1.010], Sigma(0.0097, 20), KEEP, True),  # beyond its own noise
        ([0.776, 0.778, 0.777], [0.79, 0.80, 0.81], Sigma(0.0097, 20), KEEP, False),
    ],
    ids=["issue-case", "issue-case-exact-sigma", "noisy-but-clear", "quiet-clear"],
)
def test_a_noisier_candidate_is_judged_on_its_own_spread(samples, reference, sigma, status, noisier):
    decision = decide_noise_aware(samples, reference, sigma, params=P)
    assert decision.status == status
    assert decision.evidence["noisier"] is noisier
    if noisier:
        assert "spread more than this segment's noise" in decision.reason
        assert decision.evidence["noisier_p"] < P.noisier_p


@pytest.mark.parametrize(
    "samples, near_miss",
    [([3.45, 3.47, 3.46], True),  # still in the grey zone when the confirmations ran out
     ([3.499], False), ([3.55], False), ([3.40], False)],
    ids=["grey-exhausted", "below-grey", "worse", "keep"],
)
def test_near_miss_flag(samples, near_miss):
    decision = decide_noise_aware(samples, REF, 0.03, params=P)
    assert decision.evidence["near_miss"] is near_miss
    assert (decision.status == DISCARD) or not near_miss
