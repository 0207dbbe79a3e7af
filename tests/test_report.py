"""bot.report: the status table and the counts line under it."""

import pytest

from bot.report import isolation_line, tracking_head, seconds_text, spending_line, status_table, summary_line

SHA = "abcdef0123456789abcdef0123456789abcdef01"


def rec(id, status, metric, kind="experiment", description=None, delta=None):
    record = {"id": id, "kind": kind, "status": status, "metric": metric, "commit": SHA,
              "description": description or f"change {id}", "evidence": {}}
    if delta is not None:
        record["evidence"]["delta"] = delta
    return record


LEDGER = [
    rec(0, "keep", 3.5, kind="baseline", description="baseline"),
    rec(1, "discard", 3.6, delta=0.1),
    rec(2, "keep", 3.4, delta=-0.1, description="LR 0.04 -> 0.06"),
    rec(3, "crash", None),
    rec(12, "keep", 3.3, delta=-0.1, description="WIDTH 64 -> 128"),
]


def test_empty_ledger_gives_a_hint():
    text = status_table([])
    assert "No experiments yet" in text
    assert "bot run --local" in text


def test_table_rows():
    lines = status_table(LEDGER).splitlines()
    assert lines[0].split() == ["id", "commit", "val_bpb", "delta", "σ", "status", "description"]
    rows = lines[1:6]
    assert [row.split()[0] for row in rows] == ["0000", "0001", "0002", "0003", "0012"]
    assert all(row.split()[1] == "abcdef0" for row in rows)
    assert "3.600000" in rows[1] and "+0.100000" in rows[1]
    assert "3.400000" in rows[2] and "-0.100000" in rows[2] and rows[2].endswith("LR 0.04 -> 0.06")
    assert rows[3].split()[2:5] == ["-", "-", "crash"]  # no metric, no delta (no σ either)
    assert lines[6] == ""
    # columns are aligned: every status starts at the same column
    columns = {row.index(status) for row, status in zip(rows, ["keep", "discard", "keep", "crash", "keep"])}
    assert len(columns) == 1


def test_best_and_counts_line():
    last = status_table(LEDGER).splitlines()[-1]
    assert last == ("4 experiment(s): 2 kept, 1 discarded, 1 crashed. Best val_bpb 3.300000 "
                    "(0012, WIDTH 64 -> 128), -0.200000 vs the first baseline")


def test_long_descriptions_are_cut():
    text = status_table([rec(1, "discard", 3.6, description="x" * 100)], width=20)
    assert ("x" * 19 + "…") in text and "x" * 20 not in text


@pytest.mark.parametrize(
    "records, expected_id",
    [
        (LEDGER, 12),
        ([rec(1, "discard", 1.0), rec(2, "keep", 3.0)], 2),  # discarded runs never count
        ([rec(1, "keep", 3.0), rec(2, "keep", 3.5)], 2),  # where the branch is, not the smallest number
        ([rec(1, "crash", None), rec(2, "discard", 3.0)], None),
        ([], None),
    ],
    ids=["ledger", "only-kept", "last-keep", "nothing-kept", "empty"],
)
def test_tracking_head(records, expected_id):
    head = tracking_head(records)
    assert (head["id"] if head else None) == expected_id


@pytest.mark.parametrize(
    "records, metric, expected",
    [
        ([rec(0, "keep", 3.5, kind="baseline", description="baseline")], "val_bpb",
         "0 experiment(s): 0 kept, 0 discarded, 0 crashed. Best val_bpb 3.500000 (0000, baseline), "
         "+0.000000 vs the first baseline"),
        ([rec(0, "crash", None, kind="baseline")], "val_bpb", "0 experiment(s): 0 kept, 0 discarded, 0 crashed; 1 baseline(s) crashed"),
        ([rec(1, "discard", 0.9)], "accuracy", "1 experiment(s): 0 kept, 1 discarded, 0 crashed"),
    ],
    ids=["baseline-only", "crashed-baseline", "no-keep"],
)
def test_summary_line(records, metric, expected):
    assert summary_line(records, metric) == expected


def test_status_table_leaves_out_notes():
    records = [
        {"id": 0, "kind": "baseline", "status": "keep", "metric": 3.5, "commit": "a" * 40, "description": "baseline"},
        {"id": 1, "kind": "try", "status": "note", "text": "LR 0.1", "about": 0},
    ]
    table = status_table(records)
    assert "note" not in table and "0001" not in table and "0000" in table


@pytest.mark.parametrize("rows, line", [
    ([{"status": "keep", "isolation": "bwrap"}], "isolation: bwrap"),
    ([{"status": "keep", "key": {"isolation": "none"}}],
     "isolation: none (experiments ran without the sandbox: they could read this machine's files and environment)"),
    ([{"status": "keep"}, {"status": "note", "isolation": "none"}], "isolation: unrecorded"),
    ([{"status": "keep", "isolation": "bwrap", "flags": ["trust mode: no harness result, the printed value was used"]}],
     "isolation: bwrap; trust mode: the metric is the number train.py printed"),
], ids=["sandboxed", "none-from-key", "before-the-sandbox", "trust-mode"])
def test_isolation_line(rows, line):
    assert isolation_line(rows) == line


def test_trust_mode_is_shown_from_the_comparability_key():
    """`harness: []` is trust mode even when every run's own result came back (no flag)."""
    rows = [{"status": "keep", "isolation": "none", "key": {"harness_sha256": {}}}]
    assert isolation_line(rows).endswith("; trust mode: the metric is the number train.py printed")


@pytest.mark.parametrize("seconds, text", [(0.04, "0.0 s"), (0.4, "0.4 s"), (9.94, "9.9 s"), (12.4, "12 s"), (300.0, "300 s")])
def test_seconds_text(seconds, text):
    assert seconds_text(seconds) == text


@pytest.mark.parametrize("records, expected", [
    ([{"cost_usd": 0.0}], None),
    ([{"cost_usd": 0.33, "timings": {"billed_s": 300}}, {"cost_usd": 0.33, "timings": {"billed_s": 300}}],
     "GPU $0.6600 (10.0 min billed); proposals free (offline); total $0.6600"),
    ([{"cost_usd": 0.33, "proposal": {"model": "claude-sonnet-5-5", "usd": 0.01, "tokens": {"input": 5}}}],
     "proposals: 1 by claude-sonnet-5-5; tokens 5 input, 0 cached read, 0 cache write, 0 output; $0.0100; "
     "GPU $0.3300; total $0.3400"),
])
def test_spending_line_gpu_and_proposals(records, expected):
    assert spending_line(records) == expected
