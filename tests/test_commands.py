"""Slash-command parsing, ignore rules and authorization (pure)."""

import pytest

from bot.github.commands import (
    Command,
    CommandError,
    authorize,
    clip,
    ignore_reason,
    parse,
    trust_problem,
)


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
    (Command("help"), "none", False),  # help too: only writers can make the bot answer (issue #11, 7)
])
def test_authorize(command, permission, allowed):
    ok, why = authorize(command, permission)
    assert ok is allowed
    if not ok:
        assert "needs write permission" in why and f"`{permission or 'none'}`" in why


@pytest.mark.parametrize("permission,role,named", [("read", "triage", "triage"), ("read", "read", "read"),
                                                   ("none", None, "none"), ("read", "auditor", "auditor")])
def test_a_refusal_names_the_role_not_the_permission_it_maps_to(permission, role, named):
    ok, why = authorize(Command("retry"), permission, role)
    assert not ok and f"you have `{named}`" in why


def test_maintain_and_custom_write_roles_may_command():
    assert authorize(Command("retry"), "write", "maintain")[0] and authorize(Command("retry"), "write", "deployer")[0]


@pytest.mark.parametrize("word", ["x`@octocat`y", "``@octocat``", "<!--autoresearch:comment-->", "@team/all"])
def test_a_parse_error_quotes_the_word_so_it_cannot_break_out(word):
    with pytest.raises(CommandError) as caught:
        parse(f"/autoresearch {word}")
    text = str(caught.value)
    quoted = text.split("unknown command ", 1)[1].split(": use one of")[0]
    assert quoted.startswith("`") and quoted.endswith("`") and quoted.count("`") == 2, quoted
    assert "@octocat" not in text and "@team" not in text and "<!--" not in text


def test_clip_keeps_the_start_and_counts_the_rest():
    assert clip("short") == ("short", 0)
    text, cut = clip("y" * 10_000)
    assert len(text) == 4000 and cut == 6000


FACTS = {"author": "github-actions[bot]", "head_repo": "octo/night", "repo": "octo/night",
         "head_ref": "autoresearch/default-exp/0003", "head_sha": "a" * 40}


@pytest.mark.parametrize("change,why", [
    ({}, None),
    ({"author": "mallory"}, "opened by `mallory`"),
    ({"head_repo": "mallory/night"}, "head is in `mallory/night`"),
    ({"head_repo": None}, "a deleted repository"),
    ({"head_ref": "colleague/work"}, "not an experiment branch"),
    ({"head_ref": "autoresearch/other-exp/0003"}, "not an experiment branch"),
    ({"head_ref": "autoresearch/default-exp/0003-attempt1"}, "not an experiment branch"),
    ({"head_sha": "b" * 40}, "is not the commit the bot measured"),
])
def test_trust_problem(change, why):
    got = trust_problem(dict(FACTS, **change), {"commit": "a" * 40}, "github-actions[bot]", "autoresearch/default-exp/")
    assert got is None if why is None else why in got
