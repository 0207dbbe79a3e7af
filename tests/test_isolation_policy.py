"""Where no sandbox can start: local runs go on and say why once; GitHub mode refuses to run
experiments beside its token unless --no-isolation; `isolation: sandbox` refuses; every row
records the level, and `bot status` shows it."""

import pytest
from click.testing import CliRunner

import bot.runners.local as local
from bot.cli import cli
from bot.config import parse_config
from bot.errors import BotError
from bot.runners.local import checked_runner
from conftest import git


@pytest.fixture
def no_sandbox(monkeypatch):
    monkeypatch.setattr(local, "probe", lambda: (False, "bwrap cannot create namespaces here (test)"))


def test_local_mode_goes_on_unsandboxed_and_says_why_once(no_sandbox):
    lines = []
    runner = checked_runner(parse_config({}), warn=lines.append)
    assert runner.isolation == "none"
    assert lines == ["warning: experiments run without a sandbox (no sandbox: bwrap cannot create namespaces here "
                     "(test)); every ledger row records isolation: none"]


@pytest.mark.parametrize("settings, github, no_isolation, error", [
    ({}, True, False, "--no-isolation"),
    ({"isolation": "sandbox"}, False, False, "isolation: sandbox"),
    ({"isolation": "none"}, True, False, "--no-isolation"),  # a setting is not consent in GitHub mode
    ({}, True, True, None),
    ({"isolation": "none"}, False, False, None),
], ids=["github", "required", "github-setting-none", "github-consent", "local-none"])
def test_the_policy(no_sandbox, settings, github, no_isolation, error):
    if error:
        with pytest.raises(BotError, match=error):
            checked_runner(parse_config(settings), github=github, no_isolation=no_isolation)
    else:
        assert checked_runner(parse_config(settings), github=github, no_isolation=no_isolation).isolation == "none"


def test_with_a_sandbox_nothing_is_said(monkeypatch):
    monkeypatch.setattr(local, "probe", lambda: (True, "bwrap /usr/bin/bwrap"))
    lines = []
    assert checked_runner(parse_config({}), github=True, warn=lines.append).isolation == "bwrap"
    assert lines == []


def test_github_mode_refuses_before_any_experiment_then_runs_with_consent(no_sandbox, github_world):
    refused = github_world.run(1)
    assert refused.exit_code == 1
    assert "--no-isolation" in refused.output and "unsandboxed" in refused.output
    assert github_world.server.pulls == {}  # refused before any request
    assert github_world.bare_sha("autoresearch/default-ledger") is None  # nothing was measured or pushed
    done = github_world.run(1, "--no-isolation")
    assert done.exit_code == 0, done.output
    assert "isolation none" in done.output
    rows = [line for line in github_world.bare_file("autoresearch/default-ledger", "experiments.jsonl").splitlines()]
    assert rows and all('"isolation":"none"' in row for row in rows)


def test_bot_status_shows_the_level(no_sandbox, toy_repo):
    repo = toy_repo(extra={"autoresearch.yaml": "harness: []\nbudget_seconds: 1\ntimeout_seconds: 30\n"
                                                "replicates: 1\n"})
    runner = CliRunner()
    ran = runner.invoke(cli, ["run", "--local", "--iterations", "1", "--repo", str(repo)], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    assert ran.output.count("warning: experiments run without a sandbox") == 1
    status = runner.invoke(cli, ["status", "--repo", str(repo)])
    assert "isolation: none (experiments ran without the sandbox" in status.output
    assert "trust mode: the metric is the number train.py printed" in status.output
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
