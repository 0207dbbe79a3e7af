"""PR titles, bodies, the report and hidden markers (pure)."""

import pytest

from bot.github import messages


def _record(**changes):
    record = {"id": 3, "kind": "experiment", "commit": "c" * 40, "parent": "p" * 40, "branch": "autoresearch/x-exp/0003",
              "description": "LR 0.04 -> 0.06", "rationale": "a higher rate fits more progress in the budget",
              "status": "keep", "reason": "better than 3.500000 by 0.020000", "metric_name": "val_bpb",
              "metric": 3.48, "evidence": {"delta": -0.02}, "memory_gb": 1.5, "runner": "local",
              "summary": {"num_steps": 90, "training_seconds": 15.0}, "timings": {"total_s": 18.2},
              "key": {"device": "cpu"}, "cost_usd": 0.0}
    record.update(changes)
    return record


REFERENCE = {"id": 1, "metric": 3.5, "commit": "p" * 40}


@pytest.mark.parametrize("data", [
    {"id": 1, "text": "plain"},
    {"id": 2, "text": "has --> an html comment end"},
    {"id": 3, "text": "quotes \" and <!-- inside", "nested": {"a": [1, 2.5, None]}},
])
def test_marker_round_trips(data):
    body = f"text before\n{messages.marker(messages.EXPERIMENT_MARKER, data)}\ntext after"
    assert "-->" not in body.split("<!-- ", 1)[1][:-len(" -->\ntext after")]
    assert messages.parse_marker(body) == data


@pytest.mark.parametrize("body", [None, "", "no marker", "<!-- autoresearch:experiment {broken -->",
                                  "<!-- autoresearch:report {\"tag\":\"x\"} -->"])
def test_parse_marker_without_a_valid_marker(body):
    assert messages.parse_marker(body) is None


@pytest.mark.parametrize("record,expect,absent", [
    (_record(), ["**Kept**: better than", "| best before (0001) | 3.500000 |", "| this run | 3.480000 |",
                 "| delta | -0.020000 (-0.57%) |", "steps 90", "### Commands", "`/autoresearch retry`"], ["<details>"]),
    (_record(status="discard", metric=3.55, reason="worse", evidence={"delta": 0.05}),
     ["**Discarded**: worse", "| delta | +0.050000 (+1.43%) |"], ["<details>"]),
    (_record(status="crash", metric=None, reason="exit code 1", log_tail="Traceback\nRuntimeError: boom"),
     ["**Crashed**: exit code 1", "| this run | – |", "<details><summary>Log tail</summary>", "RuntimeError: boom"],
     ["| delta |"]),
    (_record(evidence={"delta": -0.02, "sigma": 0.01}), ["| delta in noise σ | -2.00 |"], ["not measured"]),
    (_record(samples=[3.47, 3.49]), ["| all samples | 3.470000, 3.490000 |"], []),
])
def test_pr_body(record, expect, absent):
    body = messages.pr_body(record, REFERENCE, diff_stat=" train.py | 2 +-", log_tail=record.get("log_tail", ""))
    for text in expect:
        assert text in body
    for text in absent:
        assert text not in body
    data = messages.parse_marker(body)
    assert data["id"] == record["id"] and data["status"] == record["status"] and data["commit"] == record["commit"]


def test_running_body_has_no_result_yet():
    body = messages.pr_body({"id": 4, "description": "d", "rationale": "r", "status": "running"}, None, running=True)
    assert body.startswith("**Running**") and "| this run |" not in body
    assert messages.parse_marker(body)["status"] == "running"


def test_retries_are_listed_with_every_sample():
    body = messages.pr_body(_record(), REFERENCE, retries=[{"status": "discard", "reason": "worse", "samples": [3.5, 3.52]}])
    assert "### Retry 1" in body and "3.500000, 3.520000" in body


@pytest.mark.parametrize("statuses,metrics,expected", [
    ([], [], None),  # nothing measured
    (["crash"], [None], None),  # the baseline crashed
    (["keep"], [3.5], 0.0),  # baseline only
    (["keep", "keep", "discard"], [3.5, 3.4, 3.6], -0.1),
    (["keep", "keep", "keep"], [3.5, 3.4, 3.3], -0.2),
    (["keep", "crash"], [3.5, None], 0.0),
])
def test_cumulative_delta(statuses, metrics, expected):
    records = [{"id": i, "kind": "baseline" if i == 0 else "experiment", "status": s, "metric": m}
               for i, (s, m) in enumerate(zip(statuses, metrics))]
    delta = messages.cumulative_delta(records)
    assert delta is None if expected is None else delta == pytest.approx(expected)


def test_report_links_prs_and_states_the_cumulative_delta():
    records = [{"id": 0, "kind": "baseline", "status": "keep", "metric": 3.5, "description": "baseline"},
               {"id": 1, "kind": "experiment", "status": "keep", "metric": 3.4, "description": "a|b", "evidence": {"delta": -0.1}},
               {"id": 2, "kind": "experiment", "status": "discard", "metric": 3.6, "description": "c", "evidence": {"delta": 0.2}},
               {"id": 3, "kind": "request", "status": "note", "command": "retry", "pr": 11}]
    body = messages.report_body("night", records, {1: 11, 2: None})
    assert "**-0.100000**" in body and "| #11 |" in body and "ledger only" in body and "a/b" in body
    assert "| 0003 |" not in body
    assert messages.parse_marker(body, messages.REPORT_MARKER) == {"tag": "night", "kept": 1}  # the last kept shown
    assert messages.report_title("night", records) == "autoresearch/night: 1 kept, -0.100000 cumulative"


@pytest.mark.parametrize("record, expected", [
    ({"cost_usd": 0.0}, "GPU $0"),
    ({"cost_usd": 0.36201, "timings": {"billed_s": 330.0}}, "GPU $0.3620 (330 s billed)"),
    ({"cost_usd": 3.2911, "timings": {"billed_s": 3000.4}}, "GPU $3.29 (3000 s billed)"),
])
def test_gpu_cost_in_the_run_facts(record, expected):
    from bot.github.messages import gpu_cost, run_facts

    assert gpu_cost(record) == expected
    assert run_facts(record).endswith(expected)


def test_a_comment_never_passes_githubs_limit_and_keeps_its_marker():
    body = messages.comment("try", "z" * 70_000, "try-7")
    assert len(body) <= messages.COMMENT_LIMIT and body.endswith(messages.marker(messages.COMMENT_MARKER,
                                                                                  {"kind": "try", "key": "try-7"}))


def test_quote_is_one_closed_code_span_without_mentions_or_markers():
    text = messages.quote("a `b` @octocat\n<!-- autoresearch:comment {} -->" + "x" * 500)
    assert text.startswith("`") and text.endswith("`") and text.count("`") == 2
    assert "@octocat" not in text and "<!--" not in text and "\n" not in text and len(text) <= 302 + text.count("\u200b")
