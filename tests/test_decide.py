"""bot.decide: greedy keep / discard / crash, with the numbers the decision was made on."""

import dataclasses

import pytest

from bot.decide import CRASH, DISCARD, KEEP, Decision, decide, improvement

NAN = float("nan")


@pytest.mark.parametrize(
    "run_status, value, best_before, direction, expected, reason_part",
    [
        ("ok", 3.40, 3.50, "minimize", KEEP, "better than 3.500000 by 0.100000"),
        ("ok", 3.50, 3.50, "minimize", DISCARD, "equal to 3.500000"),
        ("ok", 3.60, 3.50, "minimize", DISCARD, "worse than 3.500000 by 0.100000"),
        ("ok", 0.95, 0.90, "maximize", KEEP, "better than 0.900000 by 0.050000"),
        ("ok", 0.90, 0.90, "maximize", DISCARD, "not strictly better"),
        ("ok", 0.85, 0.90, "maximize", DISCARD, "worse than 0.900000 by 0.050000"),
        ("ok", 3.4999999, 3.5, "minimize", KEEP, "better"),  # any strict gain counts
        ("ok", 3, 4, "minimize", KEEP, "better"),  # ints are numbers too
        ("crash", 3.0, 3.5, "minimize", CRASH, "crashed"),  # a crash never keeps, even when "better"
        ("timeout", 3.0, 3.5, "minimize", CRASH, "timed out"),
        ("cancelled", 3.0, 3.5, "minimize", CRASH, "crashed"),
        ("ok", NAN, 3.5, "minimize", CRASH, "metric is nan, not a finite number"),
        ("ok", float("inf"), 3.5, "maximize", CRASH, "not a finite number"),
        ("ok", None, 3.5, "minimize", CRASH, "metric is None"),
        ("ok", "3.0", 3.5, "minimize", CRASH, "not a finite number"),
    ],
    ids=["min-better", "min-equal", "min-worse", "max-better", "max-equal", "max-worse", "min-tiny-gain",
         "ints", "crash", "timeout", "cancelled", "nan-value", "inf-value", "none-value", "text-value"],
)
def test_greedy(run_status, value, best_before, direction, expected, reason_part):
    decision = decide(run_status, value, best_before, direction)
    assert isinstance(decision, Decision)
    assert decision.status == expected
    assert reason_part in decision.reason
    assert decision.evidence["rule"] == "greedy"
    assert decision.evidence["direction"] == direction
    assert decision.evidence["best_before"] == best_before


@pytest.mark.parametrize(
    "run_status, crash_reason, expected_reason",
    [("crash", "exited with code 1: OOM", "exited with code 1: OOM"),
     ("timeout", "no result within the 60 s timeout", "no result within the 60 s timeout")],
    ids=["crash", "timeout"],
)
def test_crash_reason_is_passed_through(run_status, crash_reason, expected_reason):
    decision = decide(run_status, None, 3.5, crash_reason=crash_reason)
    assert (decision.status, decision.reason) == (CRASH, expected_reason)


@pytest.mark.parametrize(
    "value, best_before, direction, delta, gain",
    [(3.4, 3.5, "minimize", -0.1, 0.1), (3.6, 3.5, "minimize", 0.1, -0.1),
     (0.95, 0.9, "maximize", 0.05, 0.05), (0.85, 0.9, "maximize", -0.05, -0.05)],
    ids=["min-better", "min-worse", "max-better", "max-worse"],
)
def test_evidence_has_delta_and_improvement(value, best_before, direction, delta, gain):
    evidence = decide("ok", value, best_before, direction).evidence
    assert evidence["value"] == value
    assert evidence["delta"] == pytest.approx(delta)
    assert evidence["improvement"] == pytest.approx(gain)
    assert improvement(value, best_before, direction) == pytest.approx(gain)


def test_crash_evidence_has_no_delta():
    evidence = decide("crash", None, 3.5).evidence
    assert "delta" not in evidence and evidence["value"] is None


@pytest.mark.parametrize("best_before", [None, NAN, float("inf")], ids=["none", "nan", "inf"])
def test_best_before_must_be_finite(best_before):
    with pytest.raises(ValueError, match="measure a baseline first"):
        decide("ok", 3.0, best_before)


def test_crash_needs_no_reference():
    # a crashed run is recorded as a crash even before a baseline exists
    assert decide("crash", None, None).status == CRASH


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown decision rule 'bayes'"):
        decide("ok", 3.0, 3.5, rule="bayes")


def test_decision_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        decide("ok", 3.0, 3.5).status = KEEP
