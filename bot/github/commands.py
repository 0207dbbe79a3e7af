"""Slash commands in PR comments: parsing, which events to ignore, and who may run them. Pure."""

import dataclasses

from bot.github.messages import quote

PREFIX = "/autoresearch"
COMMANDS = ("retry", "revert", "reject", "try", "help")
NEEDS_ARGUMENT = {"reject": "why the change should not be tried again", "try": "the idea to try"}
# The collaborator-permission endpoint's `permission` (admin|write|read|none; maintain reads as
# write, triage as read) and `role_name` (which of them, or a custom role). author_association
# is not used: it says nothing about rights. Every command, help included, needs write: only
# then does the bot answer at all, so nobody else can make it speak (issue #11, defect 7).
ALLOWED = {"admin", "maintain", "write"}
# A `try`/`reject` text is kept up to this many characters (a comment may hold 65,536).
MAX_ARGUMENT = 4000


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    argument: str = ""


class CommandError(ValueError):
    """A comment that starts with /autoresearch but is not a valid command."""


def parse(body):
    """The command in a comment (its first line starting with /autoresearch), or None."""
    for line in (body or "").splitlines():
        words = line.strip().split(None, 2)
        if not words or words[0].lower() != PREFIX:
            continue
        if len(words) == 1:
            raise CommandError(f"`{PREFIX}` needs a command: one of {', '.join(COMMANDS)}")
        name = words[1].lower()
        if name not in COMMANDS:  # the word is the commenter's: quoted so it cannot break out
            raise CommandError(f"unknown command {quote(words[1], 40)}: use one of {', '.join(COMMANDS)} "
                               f"(`{PREFIX} help` explains them)")
        argument = words[2].strip() if len(words) > 2 else ""
        if name in NEEDS_ARGUMENT and not argument:
            raise CommandError(f"`{PREFIX} {name}` needs {NEEDS_ARGUMENT[name]}, e.g. `{PREFIX} {name} ...`")
        return Command(name, argument)
    return None


def event_problem(event):
    """What makes `event` unusable as an issue_comment event (None when it is one)."""
    if not isinstance(event, dict) or not isinstance(event.get("comment"), dict) \
            or not isinstance(event.get("issue"), dict):
        return ("the event is not an issue_comment event (it needs `comment` and `issue` objects): pass the "
                "file GitHub Actions names in $GITHUB_EVENT_PATH for an `issue_comment` trigger")
    return None


def ignore_reason(event, bot_login):
    """Why an issue_comment event is not a command for us (None: handle it)."""
    if event.get("action") != "created":
        return f"comment was {event.get('action')}, not created (edits are not re-run)"
    if not (event.get("issue") or {}).get("pull_request"):
        return "comment is on an issue, not a pull request"
    user = (event.get("comment") or {}).get("user") or {}
    if user.get("login") == bot_login or user.get("type") == "Bot":
        return "comment was written by a bot"
    if PREFIX not in (event.get("comment") or {}).get("body", "").lower():
        return "comment has no /autoresearch command"
    return None


def may_command(permission, role_name=None):
    """Whether a user may run commands (and so be answered at all): write, maintain or admin."""
    return permission in ALLOWED or role_name in ALLOWED


def authorize(command, permission, role_name=None):
    """(allowed, reason) for a user whose repository permission is `permission` (`role_name`)."""
    if may_command(permission, role_name):
        return True, f"{role_name if role_name in ALLOWED else permission} permission"
    held = role_name or permission or "none"  # triage is triage, not the `read` it maps to
    return False, (f"`{PREFIX} {command.name}` needs write permission on this repository; you have "
                   f"{quote(held, 40)}. Ask a maintainer to run it, or to give you write access.")


def clip(argument, limit=MAX_ARGUMENT):
    """(text kept, characters cut) for a `try`/`reject` argument."""
    return (argument, 0) if len(argument) <= limit else (argument[:limit], len(argument) - limit)


def trust_problem(facts, data, bot_login, exp_prefix):
    """Why a PR's experiment marker cannot be trusted (None: it can).

    A marker is the bot's only when the bot opened the PR (`author`), from this repository (not
    a fork), on an experiment branch, and the PR's head is still the commit the marker names:
    anyone can copy a marker into a PR body, and a push after the bot's changes the code."""
    suffix = (facts.get("head_ref") or "").removeprefix(exp_prefix)
    if facts.get("author") != bot_login:
        return f"the PR was opened by {quote(facts.get('author') or 'nobody', 60)}, not by the bot ({quote(bot_login, 60)})"
    if facts.get("head_repo") != facts.get("repo"):
        return f"its head is in {quote(facts.get('head_repo') or 'a deleted repository', 80)}, not in {facts.get('repo')}"
    if not (facts.get("head_ref") or "").startswith(exp_prefix) or not suffix.isdigit():
        return f"its head branch {quote(facts.get('head_ref') or '', 80)} is not an experiment branch (`{exp_prefix}NNNN`)"
    if facts.get("head_sha") != (data or {}).get("commit"):
        return (f"its head {str(facts.get('head_sha'))[:7]} is not the commit the bot measured "
                f"({str((data or {}).get('commit'))[:7]}): something was pushed to it after the bot")
    return None
