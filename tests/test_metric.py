"""bot.metric and the settings that use it: which number an experiment is judged on. Pure."""

import pytest

from bot.config import parse_config
from bot.decide import GATE_FAILED, decide
from bot.errors import ConfigError
from bot.ledger import render_tsv
from bot.metric import check_metric, parse_metric_setting, regex_value
from bot.report import summary_line


@pytest.mark.parametrize("value, expected", [
    ("val_bpb", ("val_bpb", None)),
    ({"name": "time_us", "regex": r"time_us: ([0-9.]+)"}, ("time_us", r"time_us: ([0-9.]+)")),
    ({"name": " score "}, ("score", None)),
])
def test_parse_metric_setting(value, expected):
    assert parse_metric_setting(value) == expected


@pytest.mark.parametrize("value, message", [
    ({"regex": "x: (1)"}, "needs a `name`"),
    ({"name": "x", "pattern": "y"}, "unknown key(s) pattern"),
    ({"name": "x", "regex": 5}, "must be text"),
    (3.5, "write a summary key"),
])
def test_parse_metric_setting_refuses_with_the_fix(value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_metric_setting(value)


@pytest.mark.parametrize("name, regex, harness, message", [
    ("time us", None, (), "must be a word"),
    ("t", "time_us: ([0-9.]+", (), "does not compile"),
    ("t", "time_us: [0-9.]+", (), "has 0 groups; it needs exactly one"),
    ("t", "(a)(b)", (), "has 2 groups"),
    ("val_bpb", "val_bpb: ([0-9.]+)", ("prepare.py",), "measured by the frozen harness"),
])
def test_check_metric_refuses_what_the_job_could_not_read(name, regex, harness, message):
    with pytest.raises(ConfigError, match=message):
        check_metric(name, regex, harness)


def test_check_metric_allows_a_printed_val_bpb_in_trust_mode():
    assert check_metric("val_bpb", r"val_bpb: ([0-9.]+)", ()).groups == 1


@pytest.mark.parametrize("output, regex, expected", [
    ("time_us: 12.5\n", r"time_us: ([0-9.]+)", 12.5),
    ("time_us: 30\nwarm-up done\ntime_us: 12\n", r"time_us: ([0-9.]+)", 12.0),  # the last match
    ("passed 17/25 assertions", r"passed (\d+)/\d+", 17.0),
    ("speed=1e3 ops", r"speed=(\S+) ops", 1000.0),
    ("time_us: 5\ntime_us: n/a\n", r"time_us: (\S+)", None),  # the final report is not a number
    ("time_us: nan", r"time_us: (\S+)", None),
    ("nothing here", r"time_us: ([0-9.]+)", None),
    ("^anchored\nline: 3", r"^line: (\d+)$", 3.0),  # ^ and $ are per line
])
def test_regex_value(output, regex, expected):
    assert regex_value(output, regex) == expected


@pytest.mark.parametrize("data, env, expected", [
    ({}, {}, ("val_bpb", None, None, 300.0)),
    ({"metric": {"name": "time_us", "regex": r"time_us: ([0-9.]+)"}, "harness": []}, {},
     ("time_us", r"time_us: ([0-9.]+)", None, 300.0)),
    ({"metric": "score", "metric_regex": r"score=(\d+)", "gate": "python -m unittest -q",
      "gate_timeout_seconds": 30}, {}, ("score", r"score=(\d+)", "python -m unittest -q", 30.0)),
    ({"metric": "f1", "gate": "  "}, {}, ("f1", None, None, 300.0)),  # a blank gate is no gate
    ({"metric": "f1"}, {"AUTORESEARCH_GATE": "make test", "AUTORESEARCH_GATE_TIMEOUT_SECONDS": "9",
                        "AUTORESEARCH_METRIC_REGEX": r"f1=([0-9.]+)"}, ("f1", r"f1=([0-9.]+)", "make test", 9.0)),
])
def test_config_metric_and_gate_settings(data, env, expected):
    config = parse_config(data, env)
    assert (config.metric, config.metric_regex, config.gate, config.gate_timeout_seconds) == expected


@pytest.mark.parametrize("data, message", [
    ({"metric": {"name": "t", "regex": "a(1)"}, "metric_regex": "b(2)"}, "given twice"),
    ({"gate_timeout_seconds": 0}, "must be positive"),
    ({"metric": {"name": "t", "regex": "no group"}}, "needs exactly one"),
    ({"metric": {"name": "val_bpb", "regex": "v=(.*)"}}, "drop the metric regex, or set `harness: \\[\\]`"),
    ({"gate_timeout": 5}, "did you mean `gate_timeout_seconds`"),
])
def test_config_metric_and_gate_errors_name_the_fix(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


@pytest.mark.parametrize("status, value, best, direction, expected", [
    ("ok", 0.80, 0.75, "maximize", "keep"),
    ("ok", 0.70, 0.75, "maximize", "discard"),
    ("ok", 0.80, 0.75, "minimize", "discard"),
    (GATE_FAILED, None, 0.75, "maximize", GATE_FAILED),
    (GATE_FAILED, None, 0.75, "minimize", GATE_FAILED),
])
def test_decide_honours_direction_and_gate_failures(status, value, best, direction, expected):
    decision = decide(status, value, best, direction, crash_reason="tests failed" if status != "ok" else "")
    assert decision.status == expected
    if status == GATE_FAILED:
        assert decision.reason == "tests failed"


RECORDS = [
    {"id": 0, "kind": "baseline", "commit": "a" * 40, "metric": 17.0, "status": "keep", "description": "baseline"},
    {"id": 1, "kind": "experiment", "commit": "b" * 40, "metric": 19.0, "status": "keep", "description": "X 1 -> 2"},
    {"id": 2, "kind": "experiment", "commit": "c" * 40, "metric": None, "status": "gate-failed",
     "description": "Y 3 -> 4"},
    {"id": 3, "kind": "experiment", "commit": "d" * 40, "metric": 12.0, "status": "discard", "description": "Z 5 -> 6"},
]


def test_results_tsv_names_the_metric_and_records_gate_failures():
    lines = render_tsv(RECORDS, "score").splitlines()
    assert lines[0] == "commit\tscore\tmemory_gb\tstatus\tdescription"
    assert lines[3].split("\t") == ["ccccccc", "0.000000", "0.0", "gate-failed", "Y 3 -> 4"]
    assert len(lines) == 5


def test_best_is_the_tracking_head_in_either_direction():
    line = summary_line(RECORDS, "score", "maximize")
    assert "Best score 19.000000 (0001, X 1 -> 2), +2.000000 vs the first baseline" in line
    assert "1 kept, 1 discarded, 0 crashed, 1 failed the gate" in line


def _rec(id_, kind, metric, status, data_hash):
    return {"id": id_, "kind": kind, "metric": metric, "status": status, "description": f"r{id_}",
            "key": {"harness_sha256": {"data/customers.csv": data_hash}, "device": "cpu"}}


@pytest.mark.parametrize("records, expected", [
    # one segment: as before
    ([_rec(0, "baseline", 0.18, "keep", "a"), _rec(1, "experiment", 0.21, "keep", "a")],
     "Best f1 0.210000 (0001, r1), +0.030000 vs the first baseline"),
    # new rows → a new baseline: the best and the gain come from the current segment only,
    # even though the old segment had a higher number on other data
    ([_rec(0, "baseline", 0.18, "keep", "a"), _rec(1, "experiment", 0.40, "keep", "a"),
      _rec(2, "baseline", 0.21, "keep", "b"), _rec(3, "experiment", 0.32, "keep", "b"),
      _rec(4, "experiment", None, "gate-failed", "b")],
     "Best f1 0.320000 (0003, r3), +0.110000 vs baseline 0002; rows before it were measured "
     "under other settings or data and are not compared"),
])
def test_best_is_taken_within_the_current_comparability_segment(records, expected):
    assert summary_line(records, "f1", "maximize").endswith(expected)
