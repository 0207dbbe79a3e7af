"""Slash-command parsing, ignore rules and authorization (pure)."""

import pytest

from bot.commands import Command, CommandError, authorize, ignore_reason, parse


@pytest.mark.parametrize("body,expected", [
    ("/autoresearch retry", Command("retry")),
    ("/AutoResearch RETRY", Command("retry")),
    ("thanks!\n/autoresearch try use a cosine schedule\nmore text", Command("try", "use a cosine schedule")),
    ("/autoresearch reject  the gain is a data leak ", Command("reject", "the gain is a data leak")),
    ("/autoresearch help", Command("help")),
    ("/autoresearch revert", Command("revert")),
    ("looks good", None),
    ("", None),
    (None, None),
    ("please run /autoresearch retry", None),  # only at the start of a line
])
def test_parse(body, expected):
    assert parse(body) == expected


@pytest.mark.parametrize("body,message", [
    ("/autoresearch", "needs a command"),
    ("/autoresearch rerun", "unknown command `rerun`"),
    ("/autoresearch try", "needs the idea to try"),
    ("/autoresearch reject", "needs why the change should not be tried again"),
])
def test_parse_errors_name_the_fix(body, message):
    with pytest.raises(CommandError, match=message):
        parse(body)


def _event(action="created", pr=True, login="alice", kind="User", body="/autoresearch retry"):
    return {"action": action, "issue": {"number": 3, **({"pull_request": {"url": "u"}} if pr else {})},
            "comment": {"id": 1, "body": body, "user": {"login": login, "type": kind}}}


@pytest.mark.parametrize("event,reason", [
    (_event(), None),
    (_event(action="edited"), "edited"),
    (_event(action="deleted"), "deleted"),
    (_event(pr=False), "not a pull request"),
    (_event(login="autoresearch-bot"), "bot"),
    (_event(login="dependabot[bot]", kind="Bot"), "bot"),
    (_event(body="great result"), "no /autoresearch command"),
])
def test_ignore_reason(event, reason):
    got = ignore_reason(event, bot_login="autoresearch-bot")
    assert got is None if reason is None else reason in got


@pytest.mark.parametrize("command,permission,allowed", [
    (Command("retry"), "admin", True),
    (Command("retry"), "write", True),
    (Command("retry"), "maintain", True),
    (Command("retry"), "triage", False),
    (Command("retry"), "read", False),
    (Command("retry"), "none", False),
    (Command("retry"), None, False),
    (Command("try", "x"), "read", False),
    (Command("help"), "none", True),
])
def test_authorize(command, permission, allowed):
    ok, why = authorize(command, permission)
    assert ok is allowed
    if not ok:
        assert "needs write permission" in why and f"`{permission or 'none'}`" in why
