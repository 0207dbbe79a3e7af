"""The experiment PR body says what a reader needs (issue #11, defect 10): the whole diff when
it is small, which direction is better, no made-up memory figure, and a warning when the noise
floor makes any keep impossible. Pure: records in, markdown out."""

import pytest

from bot.github import messages

SMALL_DIFF = """diff --git a/train.py b/train.py
--- a/train.py
+++ b/train.py
@@ -1,3 +1,3 @@
-LR = 0.04  # learning rate
+LR = 0.06  # learning rate
 WIDTH = 64  # model width"""
STAT = " train.py | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)"
URL = "https://github.example/octo/night/compare/p...c"


def _record(**changes):
    record = {"id": 3, "kind": "experiment", "commit": "c" * 40, "parent": "p" * 40, "branch": "autoresearch/x-exp/0003",
              "description": "LR 0.04 -> 0.06", "rationale": "faster", "status": "discard", "reason": "worse",
              "metric_name": "val_bpb", "metric": 3.55, "memory_gb": 0.0, "runner": "local",
              "evidence": {"rule": "greedy", "direction": "minimize", "delta": 0.05, "best_before": 3.5},
              "summary": {"num_steps": 90, "training_seconds": 15.0}, "timings": {"total_s": 18.2}, "key": {"device": "cpu"}}
    record.update(changes)
    return record


REFERENCE = {"id": 1, "metric": 3.5}


def test_a_small_diff_is_shown_whole_in_a_collapsed_block():
    body = messages.pr_body(_record(), REFERENCE, STAT, diff=SMALL_DIFF, diff_url=URL)
    details = body[body.index("<details><summary>Full diff</summary>"):]
    assert "```diff\n" + SMALL_DIFF + "\n```" in details and "+LR = 0.06" in details
    assert "train.py | 2 +-" in body


def test_a_large_diff_is_its_stat_and_a_link():
    big = SMALL_DIFF + "".join(f"\n+# line {i}" for i in range(200))
    body = messages.pr_body(_record(), REFERENCE, STAT, diff=big, diff_url=URL)
    assert "Full diff" not in body and f"[The full diff]({URL})" in body and "train.py | 2 +-" in body


def test_backticks_in_a_diff_cannot_close_its_block():
    diff = SMALL_DIFF + '\n+"""```python\n+x = 1\n+````"""'
    body = messages.pr_body(_record(), REFERENCE, STAT, diff=diff)
    assert "`````diff\n" in body and body.count("\n`````\n") == 1


@pytest.mark.parametrize("direction,words", [("minimize", "lower is better"), ("maximize", "higher is better")])
def test_the_table_says_which_direction_is_better(direction, words):
    record = _record(evidence={"direction": direction, "delta": 0.05})
    assert f"| | val_bpb ({words}) |" in messages.pr_body(record, REFERENCE)
    assert f"({words})" in messages.pr_body(_record(evidence={}), REFERENCE, direction=direction)


@pytest.mark.parametrize("memory_gb,shown", [(0.0, "memory –"), (None, "memory –"), (1.53, "memory 1.5 GB")])
def test_memory_is_a_dash_when_not_measured(memory_gb, shown):
    body = messages.pr_body(_record(memory_gb=memory_gb), REFERENCE)
    assert shown in body and "0.0 GB" not in body


def _noise_aware(threshold, sigma=0.4, min_delta=0.0):
    return _record(evidence={"rule": "noise-aware", "direction": "minimize", "delta": -0.05, "best_before": 3.5,
                             "threshold": threshold, "sigma": sigma, "min_delta": min_delta, "improvement": 0.05})


def test_a_noise_floor_that_makes_any_keep_impossible_is_flagged():
    body = messages.pr_body(_noise_aware(threshold=0.9), REFERENCE)  # 26% of the metric
    assert "Warning: no plausible change can be kept here" in body and "0.900000 (25.7% of val_bpb)" in body
    assert "σ 0.4000" in body and "`replicates`" in body
    assert "set by `min_delta`" in messages.pr_body(_noise_aware(threshold=0.5, sigma=0.01, min_delta=0.5), REFERENCE)


@pytest.mark.parametrize("record", [_noise_aware(threshold=0.03), _record()])
def test_an_ordinary_noise_floor_is_not_flagged(record):
    assert "Warning: no plausible change" not in messages.pr_body(record, REFERENCE)


def test_the_body_stays_under_the_limit_whatever_the_diff():
    wide = SMALL_DIFF + "\n+" + "x" * 70_000  # few lines, many characters
    body = messages.pr_body(_record(), REFERENCE, STAT, diff=wide, diff_url=URL)
    assert len(body) < 65536 and f"[The full diff]({URL})" in body
