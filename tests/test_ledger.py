"""bot.ledger: experiments.jsonl (the source of truth) and results.tsv rendered from it."""

import json

import pytest

from bot.ledger import (
    Ledger,
    format_record,
    next_experiment_id,
    parse_jsonl,
    render_tsv,
    tsv_header,
    tsv_row,
)

SHA = "0123456789abcdef0123456789abcdef01234567"


def record(id, status="keep", metric=3.5, **extra):
    return {"id": id, "status": status, "metric": metric, "commit": SHA, "memory_gb": 12.34,
            "description": f"experiment {id}", **extra}


@pytest.mark.parametrize(
    "metric, expected",
    [("val_bpb", "commit\tval_bpb\tmemory_gb\tstatus\tdescription"),
     ("accuracy", "commit\taccuracy\tmemory_gb\tstatus\tdescription")],
    ids=["autoresearch-columns", "metric-name-substituted"],
)
def test_tsv_header(metric, expected):
    assert tsv_header(metric) == expected


@pytest.mark.parametrize(
    "rec, expected",
    [
        (record(1, "keep", 3.5212345), "0123456\t3.521234\t12.3\tkeep\texperiment 1"),
        (record(2, "discard", 3.6), "0123456\t3.600000\t12.3\tdiscard\texperiment 2"),
        (record(3, "crash", None), "0123456\t0.000000\t0.0\tcrash\texperiment 3"),
        # a crash row is 0.000000 / 0.0 even when a (meaningless) metric was recorded
        (record(4, "crash", 3.1), "0123456\t0.000000\t0.0\tcrash\texperiment 4"),
        (record(5, "keep", 3.5, description="LR 0.04\t-> 0.06\nsecond line  \r\n"),
         "0123456\t3.500000\t12.3\tkeep\tLR 0.04 -> 0.06 second line"),
        (record(6, "keep", 3.5, description=None), "0123456\t3.500000\t12.3\tkeep\t"),
        (record(7, "keep", 3.5, commit=None), "-------\t3.500000\t12.3\tkeep\texperiment 7"),
        (record(8, "keep", 3.5, memory_gb=None), "0123456\t3.500000\t0.0\tkeep\texperiment 8"),
    ],
    ids=["keep", "discard", "crash", "crash-with-metric", "tabs-newlines-cleaned", "no-description",
         "no-commit", "no-memory"],
)
def test_tsv_row(rec, expected):
    row = tsv_row(rec)
    assert row == expected
    assert len(row.split("\t")) == 5


def test_render_tsv_skips_records_that_were_not_measured():
    records = [record(0), record(1, "discard", 3.7), record(2, "invalid", None), record(3, "crash", None),
               record(4, "running", None)]
    text = render_tsv(records)
    lines = text.split("\n")
    assert lines[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert text.endswith("\n") and lines[-1] == ""
    statuses = [line.split("\t")[3] for line in lines[1:-1]]
    assert statuses == ["keep", "discard", "crash"]
    assert "invalid" not in text and "running" not in text


def test_render_tsv_empty_is_just_the_header():
    assert render_tsv([], metric="loss") == "commit\tloss\tmemory_gb\tstatus\tdescription\n"


def test_format_record_is_one_sorted_line():
    line = format_record({"status": "keep", "id": 1, "description": "a\nb"})
    assert line.endswith("\n") and line.count("\n") == 1
    assert line == '{"description":"a\\nb","id":1,"status":"keep"}\n'


@pytest.mark.parametrize(
    "text, ids, warning_parts",
    [
        ("", [], []),
        ('{"id":1,"status":"keep"}\n{"id":2,"status":"crash"}\n', [1, 2], []),
        ('{"id":1,"status":"keep"}\n\n\n{"id":2,"status":"crash"}', [1, 2], []),
        ('{"id":1,"status":"keep"}\n{"id":2,"sta', [1], ["last line (interrupted write)"]),
        ('{"id":1,"status":"keep"}\n{"id":2,"sta\n', [1], ["last line (interrupted write)"]),
        ('{"id":1,"sta\n{"id":2,"status":"keep"}\n', [2], ["line 1 is not valid JSON"]),
        ('[1, 2]\n{"id":2,"status":"keep"}\n', [2], ["line 1 is not an experiment record"]),
        ('{"status":"keep"}\n{"id":3,"status":"keep"}\n', [3], ["line 1 is not an experiment record"]),
    ],
    ids=["empty", "two-records", "blank-lines", "torn-last-line", "torn-last-line-newline",
         "bad-middle-line", "not-a-dict", "no-id"],
)
def test_parse_jsonl(text, ids, warning_parts):
    records, warnings = parse_jsonl(text)
    assert [r["id"] for r in records] == ids
    assert len(warnings) == len(warning_parts)
    for warning, part in zip(warnings, warning_parts):
        assert part in warning


@pytest.mark.parametrize(
    "ids, taken, expected",
    [([], (), 1), ([0], (), 1), ([0, 1, 2], (), 3), ([0, 5, 2], (), 6), ([0, 1], (2, 3), 4),
     ([0, 7], (3,), 8), (["0004"], ("0009",), 10)],
    ids=["empty", "after-baseline", "sequential", "max-not-count", "taken-branches", "taken-lower",
         "text-ids"],
)
def test_next_experiment_id(ids, taken, expected):
    assert next_experiment_id([{"id": i, "status": "keep"} for i in ids], taken) == expected


def test_ledger_read_missing_is_empty(tmp_path):
    ledger = Ledger(tmp_path / "none")
    assert ledger.read() == []
    assert not (tmp_path / "none").exists()


def test_ledger_append_writes_jsonl_and_tsv(tmp_path):
    ledger = Ledger(tmp_path / ".autoresearch" / "default")
    ledger.append(record(0, description="baseline"))
    ledger.append(record(1, "crash", None, description="LR\tup"))
    ledger.append(record(2, "invalid", None))
    assert [r["id"] for r in ledger.read()] == [0, 1, 2]
    assert ledger.warnings == []
    lines = ledger.jsonl_path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [0, 1, 2]
    assert ledger.tsv_path.read_text() == (
        "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
        "0123456\t3.500000\t12.3\tkeep\tbaseline\n"
        "0123456\t0.000000\t0.0\tcrash\tLR up\n"
    )
    assert not list(ledger.directory.glob("*.tmp"))


def test_ledger_tsv_uses_the_metric_name(tmp_path):
    ledger = Ledger(tmp_path, metric="accuracy")
    ledger.append(record(0))
    assert ledger.tsv_path.read_text().startswith("commit\taccuracy\tmemory_gb\tstatus\tdescription\n")


def test_ledger_append_after_a_torn_line(tmp_path):
    ledger = Ledger(tmp_path)
    complete = format_record(record(0)) + format_record(record(1, "discard", 3.6))
    ledger.jsonl_path.write_text(complete + '{"id": 2, "status": "ke')  # killed mid-write, no newline
    records = ledger.read()
    assert [r["id"] for r in records] == [0, 1]
    assert len(ledger.warnings) == 1 and "interrupted write" in ledger.warnings[0]

    ledger.append(record(3, "keep", 3.4))
    records = ledger.read()
    assert [r["id"] for r in records] == [0, 1, 3]  # the new record did not merge into the torn one
    assert len(ledger.warnings) == 1  # the torn line is still reported, now as a middle line
    text = ledger.jsonl_path.read_text()
    assert text.startswith(complete) and text.endswith(format_record(record(3, "keep", 3.4)))
    tsv = ledger.tsv_path.read_text().splitlines()
    assert [row.split("\t")[3] for row in tsv[1:]] == ["keep", "discard", "keep"]


def test_write_tsv_regenerates_a_stale_file(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.append(record(0))
    ledger.tsv_path.write_text("garbage\n")
    ledger.write_tsv()
    assert ledger.tsv_path.read_text() == render_tsv(ledger.read())
