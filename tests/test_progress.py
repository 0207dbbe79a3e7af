"""bot.progress (report numbers, plot data, markdown), bot.plot (the PNG), `bot report`,
`bot status` showing deltas in σ."""

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.plot import write_progress_png
from bot.progress import markdown_report, progress_points, report_stats, run_seconds, stats_line
from bot.report import status_table

SHA = "0123456789abcdef0123456789abcdef01234567"


def runs(*metrics, seconds=10.0):
    return [{"seed": i, "status": "ok" if m is not None else "crash", "metric": m, "total_s": seconds}
            for i, m in enumerate(metrics)]


def rec(id, kind, status, metric, replicates, description="", delta=None, delta_sigma=None, cost=0.0, **evidence):
    return {"id": id, "kind": kind, "status": status, "metric": metric, "commit": SHA, "description": description,
            "replicates": replicates, "cost_usd": cost,
            "evidence": dict({"delta": delta, "delta_sigma": delta_sigma}, **evidence) if delta is not None else {}}


LEDGER = [
    rec(0, "baseline", "keep", 3.50, runs(3.50, 3.52, 3.48), "baseline", cost=0.3),
    rec(1, "experiment", "discard", 3.53, runs(3.53), "LR 1 -> 2", 0.03, 1.4, cost=0.1),
    rec(2, "experiment", "keep", 3.40, runs(3.41, 3.40, 3.39), "WIDTH 64 -> 32", -0.10, -4.7, cost=0.3,
        sigma=0.0213, fresh_mean=3.395, fresh_n=2),
    rec(3, "experiment", "crash", None, runs(None, seconds=2.0), "DEPTH 2 -> 3"),
    rec(4, "experiment", "discard", 3.45, runs(3.44, 3.46), "WD 0.1 -> 0.2", 0.05, 2.4, cost=0.2),
    rec(5, "reproduce", "reproduced", 3.41, runs(3.41, 3.42), "WIDTH 64 -> 32"),
]


def test_report_stats():
    stats = report_stats(LEDGER)
    assert (stats["experiments"], stats["kept"], stats["discarded"], stats["crashed"]) == (4, 1, 2, 1)
    assert stats["keep_rate"] == pytest.approx(0.25)
    assert stats["runs"] == 3 + 1 + 3 + 1 + 2 + 2
    assert stats["compute_s"] == pytest.approx(11 * 10.0 + 2.0)
    assert stats["cost_usd"] == pytest.approx(0.9)
    assert stats["head"]["id"] == 2 and stats["baseline"]["id"] == 0
    assert stats["cumulative_delta"] == pytest.approx(-0.10)
    # pooled over every repeated commit, weighted by runs: (2·4 + 2·1 + 1·2 + 1·0.5)e-4 / 6
    assert stats["sigma"] == pytest.approx((12.5e-4 / 6) ** 0.5) and stats["sigma_df"] == 6


def test_the_footer_sigma_is_the_current_segments():
    """`bot status`'s σ is the one the next decision uses: rows under other settings are left out."""
    old = [dict(r, key={"budget_seconds": 5.0}) for r in LEDGER]
    new = [dict(rec(6, "baseline", "keep", 4.0, runs(4.0, 4.1)), key={"budget_seconds": 15.0})]
    stats = report_stats(old + new)
    assert stats["sigma"] == pytest.approx(0.1 / 2 ** 0.5) and stats["sigma_df"] == 1


@pytest.mark.parametrize(
    "records, parts",
    [(LEDGER, ["keep rate 25%", "head -0.100000 vs the first baseline (-6.9σ)", "noise σ 0.014434 (6 df; the next decision's)",
               "12 run(s), 1.9 min of compute, $0.90"]),
     ([rec(0, "baseline", "keep", 3.5, [], "baseline")], ["noise σ unknown", "1 run(s)"])],
    ids=["ledger", "baseline-only"],
)
def test_stats_line(records, parts):
    line = stats_line(report_stats(records))
    for part in parts:
        assert part in line


@pytest.mark.parametrize(
    "record, seconds",
    [({"replicates": runs(1.0, 2.0, seconds=5.0)}, 10.0), ({"timings": {"total_s": 7.5}}, 7.5), ({}, 0.0)],
    ids=["replicates", "legacy", "nothing"],
)
def test_run_seconds(record, seconds):
    assert run_seconds(record) == pytest.approx(seconds)


def test_progress_points():
    data = progress_points(LEDGER)
    assert [(p["x"], p["y"], p["status"], p["n"], p["baseline"]) for p in data["points"]] == [
        (0, 3.50, "keep", 3, True), (1, 3.53, "discard", 1, False), (2, 3.40, "keep", 3, False),
        (4, 3.45, "discard", 2, False)]
    assert data["kept"] == [{"x": 0, "y": 3.50, "label": "baseline"}, {"x": 2, "y": 3.40, "label": "WIDTH 64 -> 32"}]
    assert data["best_line"] == [(0, 3.50), (2, 3.40), (4, 3.40)]  # held to the last experiment


def test_progress_points_of_an_empty_ledger():
    assert progress_points([]) == {"points": [], "kept": [], "best_line": []}


def test_markdown_report():
    text = markdown_report(LEDGER, image="progress.png")
    assert "![progress](progress.png)" in text
    assert "keep rate 25%" in text and "cumulative delta -0.100000" in text
    assert ("best (tracking head): val_bpb 3.400000 — 0002 WIDTH 64 -> 32 (mean of 3 run(s); fresh-seed "
            "estimate 3.395000 from the 2 run(s) not used to pick it)") in text
    assert "| 0002 | 0123456 | 3.400000 | 3 | -0.100000 | -4.7 | 0.0213 | keep | $0.3000 | WIDTH 64 -> 32 |" in text
    assert "| 0003 | 0123456 | - | 1 | - | - | - | crash | $0.0000 | DEPTH 2 -> 3 |" in text
    assert "- isolation: unrecorded" in text
    assert "$0.90" in text


def test_status_table_shows_delta_in_sigma():
    text = status_table(LEDGER)
    row = [line for line in text.splitlines() if line.startswith("0002")][0]
    assert "-0.100000 (-4.7σ)" in row and "0.0213" in row  # the σ this row was decided with
    assert "$0.3000" in row  # what this experiment cost (GPU time; proposals too when priced)


def test_status_table_has_a_cost_column_only_when_something_was_spent():
    free = [dict(r, cost_usd=0.0) for r in LEDGER]
    assert "cost" not in status_table(free).splitlines()[0]
    proposed = free[:2] + [dict(free[2], proposal={"model": "claude-sonnet-5-5", "usd": 0.0074})]
    header, *rows = status_table(proposed).splitlines()
    assert "cost" in header and "$0.0074" in [r for r in rows if r.startswith("0002")][0]


def test_png_is_written(tmp_path):
    path = write_progress_png(progress_points(LEDGER), tmp_path / "progress.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_report_command_writes_markdown_and_png(toy_repo):
    repo = toy_repo(extra={"autoresearch.yaml": "harness: []\nreplicates: 2\n"})
    runner = CliRunner()
    run = runner.invoke(cli, ["run", "--local", "--iterations", "2", "--budget", "1", "--repo", str(repo)])
    assert run.exit_code == 0, run.output
    assert "run 2 of 0000 with seed" in run.output
    result = runner.invoke(cli, ["report", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    folder = repo / ".autoresearch" / "default"
    assert (folder / "progress.png").read_bytes()[:4] == b"\x89PNG"
    assert "# autoresearch report" in (folder / "report.md").read_text()
    status = runner.invoke(cli, ["status", "--repo", str(repo)])
    assert "noise σ 0.000000" in status.output and "keep rate" in status.output


def test_report_on_an_empty_ledger_names_the_fix(toy_repo):
    result = CliRunner().invoke(cli, ["report", "--repo", str(toy_repo())])
    assert result.exit_code == 1 and "bot run --local" in result.output


@pytest.mark.parametrize("args", [["report", "--help"], ["reproduce", "--help"]])
def test_new_commands_have_examples(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "Examples:" in result.output
