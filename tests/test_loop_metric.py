"""The loop on commands other than training: maximize, gates, regex metrics, several editable
files. Real git repositories, real subprocess runs of tiny scripts (a fraction of a second each).
"""

import textwrap

import pytest

from bot.errors import BotError
from conftest import LoopRun, git, make_repo

# score.py is the frozen scorer: it imports the editable modules and prints `score=<n>`.
# The score peaks at A=5, B=30, C=0.5, so most first moves are real keeps or discards.
SCORER = textwrap.dedent("""\
    import sys
    import model
    from lib import extra, helpers
    LIMIT = 1000  # frozen: proposals may not touch it
    value = 100 - abs(model.A - 5) * 4 - abs(extra.B - 30) / 2 - abs(helpers.C - 0.5) * 10
    print("progress line score=0 (ignored: the last match wins)")
    print(f"score={value:.3f}")
""")
FILES = {
    "score.py": SCORER,
    "model.py": "A = 3  # first knob\n",
    "lib/__init__.py": "",
    "lib/extra.py": "B = 20  # second knob\n",
    "lib/helpers.py": "C = 0.2  # third knob\n",
    "notes.txt": "not code\n",
}
GATE = textwrap.dedent("""\
    import sys, time
    import model
    if getattr(model, "SLOW_GATE", 0):
        time.sleep(60)
    sys.exit(0 if model.A <= {limit} else 1)
""")
SETTINGS = dict(command="python score.py", metric={"name": "score", "regex": r"^score=([0-9.\-]+)$"},
                direction="maximize", editable=["model.py", "lib/*.py"], harness=["score.py"])


def repo_with(tmp_path, gate_limit=None, **extra_files):
    files = dict(FILES, **extra_files)
    if gate_limit is not None:
        files["gate.py"] = GATE.format(limit=gate_limit)
    return make_repo(tmp_path / "repo", files)


def test_maximize_keeps_only_strict_gains_across_several_editable_files(tmp_path):
    repo = repo_with(tmp_path)
    run = LoopRun(repo, **SETTINGS)
    outcome = run.run(iterations=6)
    records = run.records()
    assert records[0]["metric"] == pytest.approx(100 - 8 - 5 - 3)
    best = records[0]["metric"]
    for record in records[1:]:
        assert record["metric_source"] == "regex" and record["metric_name"] == "score"
        if record["status"] == "keep":
            assert record["metric"] > best
            best = record["metric"]
        else:
            assert record["status"] == "discard" and record["metric"] <= best
    assert outcome["best"]["metric"] == best > records[0]["metric"]
    changed = [git(repo, "diff", "--name-only", r["parent"], r["commit"]) for r in records[1:]]
    assert all(path in ("model.py", "lib/extra.py", "lib/helpers.py") for path in changed)
    assert len(set(changed)) >= 2, "constants in more than one editable file were tried"
    tsv = (repo / ".autoresearch/default/results.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[:2] == ["commit", "score"]
    assert records[0]["key"]["metric_regex"] == r"^score=([0-9.\-]+)$"


def test_the_proposer_pushes_a_kept_change_further_when_maximizing(tmp_path):
    run = LoopRun(repo_with(tmp_path), **SETTINGS)
    run.run(iterations=3)
    records = run.records()
    pairs = [(a, b) for a, b in zip(records[1:], records[2:])
             if a["status"] == "keep" and b["change"]["name"] == a["change"]["name"]]
    assert pairs, "a kept change is followed by another change to the same constant"
    for kept, after in pairs:
        up = float(kept["change"]["new"]) > float(kept["change"]["old"])
        assert (float(after["change"]["new"]) > float(after["change"]["old"])) == up
        assert after["change"]["old"] == kept["change"]["new"]  # built on the kept commit
        assert "was kept; push further" in after["rationale"]


def test_gate_failures_are_their_own_outcome_and_never_move_tracking(tmp_path):
    # The gate fails once A goes above 3: every change to A is gate-failed, others are measured.
    repo = repo_with(tmp_path, gate_limit=3)
    run = LoopRun(repo, gate="python gate.py", max_consecutive_crashes=1, **SETTINGS)
    outcome = run.run(iterations=4)
    records = run.records()
    assert records[0]["status"] == "keep"
    failed = [r for r in records if r["status"] == "gate-failed"]
    assert [r["change"]["name"] for r in failed] == ["A"]
    assert failed[0]["metric"] is None and "the gate `python gate.py` failed with exit code 1" in failed[0]["reason"]
    assert "gate_s" in failed[0]["timings"]
    assert outcome["experiments"] == 4, "a gate failure is not a crash: the run goes on"
    assert git(repo, "rev-parse", failed[0]["branch"]) == failed[0]["commit"]  # the diff stays reachable
    kept = [r for r in records if r["status"] == "keep"]
    assert git(repo, "rev-parse", "autoresearch/default") == kept[-1]["commit"]
    row = [line for line in (repo / ".autoresearch/default/results.tsv").read_text().splitlines()
           if line.startswith(failed[0]["commit"][:7])]
    assert row[0].split("\t")[1:4] == ["0.000000", "0.0", "gate-failed"]


def test_a_gate_timeout_is_gate_failed_with_its_own_timeout(tmp_path):
    repo = repo_with(tmp_path, gate_limit=100, **{"model.py": "A = 3  # first knob\nSLOW_GATE = 0\n"})
    run = LoopRun(repo, gate="python gate.py", gate_timeout_seconds=1, timeout_seconds=30,
                  **dict(SETTINGS, editable=["model.py"]))
    run.run(iterations=2)
    records = run.records()
    slow = [r for r in records if (r.get("change") or {}).get("name") == "SLOW_GATE"]
    assert len(slow) == 1 and slow[0]["status"] == "gate-failed"
    assert "did not finish within its 1 s timeout (gate_timeout_seconds)" in slow[0]["reason"]
    assert slow[0]["timings"]["gate_s"] < 5


def test_a_baseline_that_fails_its_gate_stops_with_the_fix(tmp_path):
    repo = repo_with(tmp_path, gate_limit=0)
    run = LoopRun(repo, gate="python gate.py", **SETTINGS)
    with pytest.raises(BotError, match="the baseline failed its gate: the gate `python gate.py` failed"):
        run.run(iterations=1)
    assert [r["status"] for r in run.records()] == ["gate-failed"]


def test_changing_the_metric_regex_starts_a_new_baseline(tmp_path):
    repo = repo_with(tmp_path)
    first = LoopRun(repo, **SETTINGS)
    first.run(iterations=1)
    head_score = [r for r in first.records() if r["status"] == "keep"][-1]["metric"]
    other = dict(SETTINGS, metric={"name": "score", "regex": r"score=([0-9.\-]+)$"})
    again = LoopRun(repo, **other)
    again.run(iterations=1)
    assert "baseline-start" in again.kinds()
    # the unanchored regex also matches the progress line, but the last match still wins
    baselines = [r for r in again.records() if r["kind"] == "baseline"]
    assert len(baselines) == 2 and baselines[1]["metric"] == head_score > 0


def test_a_proposal_to_the_frozen_scorer_is_refused(tmp_path):
    from bot.errors import ProposalError
    from bot.proposal import Proposal, validate

    base = {"model.py": FILES["model.py"], "lib/extra.py": FILES["lib/extra.py"]}
    cheat = Proposal("LIMIT 1000 -> 1", "why not", {"score.py": SCORER.replace("1000", "1")})
    with pytest.raises(ProposalError, match="score.py is the frozen harness"):
        validate(cheat, base, SETTINGS["editable"], SETTINGS["harness"])
    sideways = Proposal("notes", "why not", {"notes.txt": "changed\n"})
    with pytest.raises(ProposalError, match="notes.txt is not editable"):
        validate(sideways, base, SETTINGS["editable"], SETTINGS["harness"])
