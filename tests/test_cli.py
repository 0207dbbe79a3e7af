"""The `bot` command as a person uses it: help with examples, errors without tracebacks."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from bot.cli import cli


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["status", "--help"], ["report", "--help"],
                                  ["reproduce", "--help"], ["command", "--help"], ["ledger", "--help"],
                                  ["ledger", "rebuild", "--help"]])
def test_every_help_has_examples(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0
    assert "Examples:" in result.output and "bot " in result.output.split("Examples:")[1]


def test_run_status_and_resume_through_the_cli(toy_repo):
    repo = toy_repo(extra={"autoresearch.yaml": "harness: []\n"})
    runner = CliRunner()
    first = runner.invoke(cli, ["run", "--local", "--iterations", "2", "--budget", "1", "--repo", str(repo)])
    assert first.exit_code == 0, first.output
    assert "Baseline 0000" in first.output and "Experiment 0002" in first.output
    assert "results.tsv" in first.output and "git checkout autoresearch/default" in first.output
    second = runner.invoke(cli, ["run", "--local", "--iterations", "1", "--budget", "1", "--repo", str(repo)])
    assert "Resuming: 3 ledger row(s)" in second.output and "Baseline" not in second.output
    status = runner.invoke(cli, ["status", "--repo", str(repo)])
    assert status.exit_code == 0
    lines = status.output.splitlines()
    assert lines[0].split()[:6] == ["id", "commit", "val_bpb", "delta", "σ", "status"]
    assert [line.split()[0] for line in lines[1:5]] == ["0000", "0001", "0002", "0003"]
    assert "3 experiment(s):" in status.output and "Best val_bpb" in status.output


@pytest.mark.parametrize("yaml_text, message", [
    ("budget_second: 5\n", "unknown setting `budget_second`; did you mean `budget_seconds`?"),
    ("direction: down\n", "choose one of minimize, maximize"),
    ("budget_seconds: [\n", "not valid YAML"),
])
def test_bad_settings_are_one_clear_line_not_a_traceback(toy_repo, yaml_text, message):
    repo = toy_repo()
    (repo / "autoresearch.yaml").write_text(yaml_text)
    result = subprocess.run([sys.executable, "-m", "bot", "run", "--local", "--iterations", "1"],
                            cwd=repo, capture_output=True, text=True)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_without_local_the_missing_modal_runner_is_named(toy_repo):
    result = CliRunner().invoke(cli, ["run", "--iterations", "1", "--repo", str(toy_repo())])
    assert result.exit_code == 1
    assert "--local" in result.output
