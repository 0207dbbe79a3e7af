"""What every `bot` command does first: open the repository and its settings, and turn a
BotError into one line. Part of the CLI layer, shared by bot/cli.py and bot/github/cli.py."""

import functools
import os

import click

from bot.config import load_config, with_overrides
from bot.errors import BotError


def ledger_dir(root, config):
    return root / ".autoresearch" / config.tag


def open_repo(repo, config_path, **overrides):
    from bot.gitops import GitRepo

    git = GitRepo(repo)
    config = with_overrides(load_config(git.root, os.environ, config_path), **overrides)
    _ignore_state_dir(git.root)
    return git, config


def _ignore_state_dir(root):
    """Keep .autoresearch/ out of `git status` even in repos whose .gitignore lacks it."""
    exclude = root / ".git" / "info" / "exclude"
    if exclude.parent.is_dir():
        text = exclude.read_text() if exclude.exists() else ""
        if ".autoresearch/" not in text.split():
            exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n") + ".autoresearch/\n")


def friendly_errors(command):
    """BotError → ClickException: the message, no traceback, exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BotError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper
