"""Every hostile case through the real job in the sandbox: the attack must get nothing (see cases.py
for what each one tries and what must come of it, harness.py for the checks every case gets)."""

import collections
import dataclasses

import pytest

from .cases import CASES, CLASSES, Case, HONEST
from .harness import BOUND, changed_targets, judge, leaked_secrets, run_case

MINIMUM = {"fake metric": 5, "harness shadowing": 4, "causality": 4, "validation access": 3, "secret reads": 5,
           "persistence": 5, "budget": 2, "escape": 2}


def test_the_case_list_covers_every_class():
    counts = collections.Counter(case.klass for case in CASES)
    assert set(counts) == set(CLASSES)
    for klass, minimum in MINIMUM.items():
        assert counts[klass] >= minimum, (klass, counts[klass])
    assert len({case.name for case in CASES}) == len(CASES) >= 30
    assert len({case.body for case in CASES}) == len(CASES)  # distinct variants


def test_honest_run_is_scored(hostile_session):
    honest = hostile_session["honest"]
    assert BOUND < honest < 8.0, honest  # trained: better than uniform, and an honest bigram is >= BOUND


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_case(case, world, hostile_session):
    outcome = judge(run_case(case, world), world, hostile_session["honest"])
    result = outcome.result
    assert not outcome.problems, (
        f"{case.name} [{outcome.verdict}] ({case.note}):\n- " + "\n- ".join(outcome.problems)
        + f"\nstatus {result['status']}, metric {result['metric']}, reason: {result['reason']}"
        + f"\nlog tail:\n{(result['log_tail'] or '')[-2500:]}")


def test_the_checks_catch_an_attack_without_the_sandbox(world):
    """The same kind of attack run with isolation="none": the judge must see the secret it printed
    (encoded: redaction alone does not hide it) and the ledger row it forged. Without this, a
    passing suite could mean that the checks look in the wrong place."""
    body = '''
    for name in (".git-credentials", ".modal.toml"):
        show(name, read(os.path.join(TARGETS["home"], name)))
    with open(os.path.join(TARGETS["repo"], ".autoresearch", "default", "experiments.jsonl"), "a") as f:
        f.write('{"id": 99, "status": "keep", "metric": 0.01}\\n')
    hand_over(tiny_model())
    '''
    case = Case(name="control_no_sandbox", klass="control", expect="bounded", body=body.replace("\n    ", "\n"),
                spec={"isolation": "none"})
    outcome = run_case(case, world)
    assert outcome.result["isolation"] == "none"
    assert leaked_secrets(world, outcome), "the judge did not see the secrets an unsandboxed run printed"
    assert any("experiments.jsonl" in path for path in changed_targets(outcome.before, outcome.after))


def test_honest_case_is_not_a_hostile_case():
    assert HONEST.name not in {case.name for case in CASES}
    assert all(dataclasses.is_dataclass(case) for case in CASES)
