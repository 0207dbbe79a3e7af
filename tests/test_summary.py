"""bot.summary: the `---` block train.py prints, the metric in it, and progress lines."""

import math

import pytest

from bot.summary import SUMMARY_KEYS, clean_summary, metric_value, parse_summary, progress_fraction

FULL_BLOCK = """\
step 00099 (100.0%) | loss: 3.1
---
val_bpb:          3.521234
training_seconds: 15.0
total_seconds:    21.3
peak_vram_mb:     1024.5
mfu_percent:      12.30
total_tokens_M:   1.5
num_steps:        99
num_params_M:     0.8
depth:            4
"""


@pytest.mark.parametrize(
    "output, expected",
    [
        ("---\nval_bpb: 3.5\n", {"val_bpb": 3.5}),
        ("---\nval_bpb: 3.5\nnum_steps: 12\n", {"val_bpb": 3.5, "num_steps": 12}),
        # the last block wins: a script may print `---` earlier for its own reasons
        ("---\nval_bpb: 9.0\n\nmore output\n---\nval_bpb: 1.25\n", {"val_bpb": 1.25}),
        # a trailing `---` with nothing after it does not hide the real block before it
        ("---\nval_bpb: 2.0\nend\n---\n", {"val_bpb": 2.0}),
        # extra keys are kept as they are
        ("---\nval_bpb: 3.0\ndevice: cuda\npeak_rss_mb: 10.5\n",
         {"val_bpb": 3.0, "device": "cuda", "peak_rss_mb": 10.5}),
        # integers stay integers, anything with a point or exponent is a float
        ("---\nnum_steps: 00012\ndepth: -4\nlr: 1e-3\nx: 2.0\n",
         {"num_steps": 12, "depth": -4, "lr": 1e-3, "x": 2.0}),
        # the block ends at the first line that is not `key: value`
        ("---\nval_bpb: 3.0\nTraceback (most recent call last)\nnum_steps: 5\n", {"val_bpb": 3.0}),
        ("---\nval_bpb: 3.0\n\nnum_steps: 5\n", {"val_bpb": 3.0}),
        # indentation and surrounding spaces are tolerated
        ("  ---  \n  val_bpb:   3.0   \n", {"val_bpb": 3.0}),
        # an empty value is text, not a number
        ("---\nnote:\n", {"note": ""}),
    ],
    ids=["one-key", "two-keys", "last-block-wins", "trailing-empty-marker", "extra-keys",
         "ints-vs-floats", "stops-at-traceback", "stops-at-blank-line", "whitespace", "empty-value"],
)
def test_parse_summary(output, expected):
    assert parse_summary(output) == expected


@pytest.mark.parametrize(
    "output",
    ["", "step 00001 (1.0%) | loss: 3.0\nval_bpb: 3.0\n", "---\n", "----\nval_bpb: 3.0\n", "---\nnot a pair\n"],
    ids=["empty", "no-marker", "marker-only", "four-dashes", "marker-then-junk"],
)
def test_parse_summary_without_a_block_is_none(output):
    assert parse_summary(output) is None


def test_parse_summary_reads_every_standard_key():
    summary = parse_summary(FULL_BLOCK)
    assert set(summary) == set(SUMMARY_KEYS)
    assert summary["val_bpb"] == pytest.approx(3.521234)
    assert summary["num_steps"] == 99 and isinstance(summary["num_steps"], int)
    assert isinstance(summary["training_seconds"], float)


def test_parse_summary_non_finite_values_are_floats():
    summary = parse_summary("---\nval_bpb: nan\nloss: inf\n")
    assert math.isnan(summary["val_bpb"])
    assert summary["loss"] == math.inf


@pytest.mark.parametrize(
    "summary, metric, expected",
    [
        ({"val_bpb": 3.5}, "val_bpb", 3.5),
        ({"val_bpb": 3}, "val_bpb", 3.0),
        ({"accuracy": 0.9, "val_bpb": 3.5}, "accuracy", 0.9),
        ({"val_bpb": "oops"}, "val_bpb", None),
        ({"val_bpb": float("nan")}, "val_bpb", None),
        ({"val_bpb": float("inf")}, "val_bpb", None),
        ({"val_bpb": float("-inf")}, "val_bpb", None),
        ({"num_steps": 5}, "val_bpb", None),
        ({}, "val_bpb", None),
        (None, "val_bpb", None),
    ],
    ids=["float", "int-becomes-float", "other-metric", "text", "nan", "inf", "minus-inf",
         "missing", "empty-summary", "no-summary"],
)
def test_metric_value(summary, metric, expected):
    value = metric_value(summary, metric)
    assert value == expected
    if expected is not None:
        assert isinstance(value, float)


@pytest.mark.parametrize(
    "output, expected",
    [("---\nval_bpb: NaN\n", None), ("---\nval_bpb: 3.25\n", 3.25), ("---\nval_bpb: n/a\n", None)],
    ids=["printed-nan", "printed-number", "printed-text"],
)
def test_metric_value_from_printed_output(output, expected):
    assert metric_value(parse_summary(output), "val_bpb") == expected


@pytest.mark.parametrize(
    "line, expected",
    [
        ("step 00012 (23.4%) | loss: 3.123 | lr: 1.00e-03", 0.234),
        ("step 00000 (0.0%) | loss: 9.0", 0.0),
        ("step 00099 (100.0%) | loss: 3.0", 1.0),
        ("step 00100 (105.2%) | loss: 3.0", 1.0),  # past the budget: capped at 1
        ("step 7 (50%) | loss: 3.0", 0.5),
        ("step 00012 | loss: 3.0", None),  # a step line without a percentage
        ("val_bpb: 3.0 (23.4%)", None),  # not a step line
        ("  step 00012 (23.4%)", None),  # indented: not train.py's progress line
        ("loading (50%)", None),
        ("", None),
    ],
    ids=["typical", "zero", "hundred", "capped", "integer-percent", "no-percent", "not-step",
         "indented", "other-progress", "empty"],
)
def test_progress_fraction(line, expected):
    value = progress_fraction(line)
    if expected is None:
        assert value is None
    else:
        assert value == pytest.approx(expected)


@pytest.mark.parametrize("summary, metric, kept", [
    (None, "val_bpb", None),
    ({"val_bpb": 3.5, "device": "cpu", "num_steps": 9}, "val_bpb", {"val_bpb": 3.5, "device": "cpu", "num_steps": 9}),
    ({"val_bpb": 3.5, "note": "ghp_leaked_by_print"}, "val_bpb", {"val_bpb": 3.5}),  # unknown text dropped
    ({"device": "x" * 500}, "val_bpb", {"device": "x" * 64}),  # known text cut
    ({"score": 17, "total": 25}, "score", {"score": 17, "total": 25}),  # other numbers kept
    ({"k" * 41: 1.0}, "val_bpb", {}),  # a long unknown name is not kept
    ({f"n{i}": i for i in range(60)}, "val_bpb", {f"n{i}": i for i in range(40)}),  # at most 40 others
], ids=["none", "known", "unknown-text", "long-text", "other-metric", "long-name", "many"])
def test_clean_summary(summary, metric, kept):
    assert clean_summary(summary, metric) == kept
