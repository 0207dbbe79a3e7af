"""Slash commands in PR comments: parsing, which events to ignore, and who may run them. Pure."""

import dataclasses

PREFIX = "/autoresearch"
COMMANDS = ("retry", "revert", "reject", "try", "help")
NEEDS_ARGUMENT = {"reject": "why the change should not be tried again", "try": "the idea to try"}
# The collaborator-permission endpoint's `permission` (admin|write|read|none; maintain reads as
# write) and `role_name`. author_association is not used: it says nothing about rights.
ALLOWED = {"admin", "maintain", "write"}
NO_WRITE_NEEDED = {"help"}


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
        if name not in COMMANDS:
            raise CommandError(f"unknown command `{words[1]}`: use one of {', '.join(COMMANDS)} "
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


def authorize(command, permission, role_name=None):
    """(allowed, reason) for a user whose repository permission is `permission`."""
    if command.name in NO_WRITE_NEEDED:
        return True, "anyone may ask for help"
    level = role_name if role_name in ALLOWED else permission
    if level in ALLOWED:
        return True, f"{level} permission"
    return False, (f"`{PREFIX} {command.name}` needs write permission on this repository; you have "
                   f"`{permission or 'none'}`. Ask a maintainer to run it, or to give you write access.")
