"""Who can make the bot act or speak (issue #11, defects 2 and 7), against the loopback GitHub.

A marker is trusted only on a PR the bot opened from this repository, on an experiment branch,
whose head is the marker's commit; anything else is refused with a reply, and no branch moves.
Parse errors and `help` are answered only after the permission check; replies never echo a
person's text in a way that breaks out of its quoting or @-mentions someone.
"""

import re

import pytest
from conftest import git, ledger_rows
from test_github_commands import TRACKING, comment_event, send

from bot.github import messages


def bot_prs(server):
    return sorted(n for n, p in server.pulls.items() if p["head"].startswith(f"{TRACKING}-exp/"))


def contributor_commit(world, tmp_path, ref):
    """A contributor's change to train.py on the tracking head, pushed to `ref` of the bare repo."""
    clone = tmp_path / "contributor"
    git(tmp_path, "clone", "-q", str(world.bare), str(clone))
    git(clone, "config", "user.name", "Mallory")
    git(clone, "config", "user.email", "m@example.com")
    git(clone, "checkout", "-q", TRACKING)
    (clone / "train.py").write_text((clone / "train.py").read_text() + "\nprint('contributor code ran')\n")
    git(clone, "commit", "-qam", "speed-up")
    git(clone, "push", "-q", "--force", "origin", f"HEAD:{ref}")
    return git(clone, "rev-parse", "HEAD")


def replies(server, number, since):
    return [b["body"] for m, p, b, _ in server.requests[since:] if m == "POST" and p.endswith(f"/issues/{number}/comments")]


@pytest.mark.parametrize("attack", ["fork-with-bot-branch-name", "colleague-branch", "bot-branch-by-a-person",
                                    "head-moved-after-the-bot"])
def test_a_copied_or_stale_marker_is_refused_with_a_reply_and_nothing_moves(night, tmp_path, attack):
    world, discarded = night
    server = world.server
    server.permissions["writer"] = "write"
    real = server.pulls[discarded[0]]
    data = messages.parse_marker(real["body"])
    if attack == "head-moved-after-the-bot":  # someone pushed to the bot's own (closed) PR branch
        number = discarded[0]
        sha = contributor_commit(world, tmp_path, real["head"])
        server.pulls[number]["state"] = "open"  # open, so GitHub follows the pushed branch
        server.refresh(server.pulls[number])
        assert server.pulls[number]["head_sha"] == sha != data["commit"]
        victim = real["head"]
    else:
        victim = "colleague/work"
        git(world.bare, "branch", victim, TRACKING)
        if attack == "fork-with-bot-branch-name":
            sha = contributor_commit(world, tmp_path, "refs/contributions/1")
            head, user, fork = f"{TRACKING}-exp/0099", "mallory", "mallory"
        elif attack == "colleague-branch":
            sha = contributor_commit(world, tmp_path, "refs/heads/feature/speed")
            head, user, fork = "feature/speed", "mallory", None
        else:  # a person with push access pushed an experiment-looking branch and opened the PR
            sha = contributor_commit(world, tmp_path, f"refs/heads/{TRACKING}-exp/0099")
            head, user, fork = f"{TRACKING}-exp/0099", "colleague", None
        forged = dict(data, commit=sha, branch=victim)  # a copied marker, pointed at the attacker's commit
        number = server.open_pull_as(user, head, TRACKING, "speed-up",
                                     "Faster!\n\n" + messages.marker(messages.EXPERIMENT_MARKER, forged),
                                     head_sha=sha, fork=fork)
    refs_before = server.git("for-each-ref", "--format=%(refname) %(objectname)").stdout
    before = len(server.requests)
    output = send(world, comment_event(world, number, "/autoresearch retry", "writer"), tmp_path)
    assert "refused:" in output and "not trusted" in output, output
    answer = replies(server, number, before)
    assert len(answer) == 1 and "not trusted" in answer[0], answer
    assert [b["content"] for m, p, b, _ in server.requests[before:] if p.endswith("/reactions")] == ["eyes", "confused"]
    assert server.git("for-each-ref", "--format=%(refname) %(objectname)").stdout == refs_before  # no branch moved
    assert not [r for r in server.requests[before:] if r[0] == "PATCH"]


def test_a_genuine_bot_pr_is_still_trusted(night, tmp_path):
    world, discarded = night
    world.server.permissions["writer"] = "write"
    output = send(world, comment_event(world, discarded[0], "/autoresearch retry", "writer"), tmp_path)
    assert "done: retry 1" in output, output


# ---- defect 7: who can make the bot speak, and what it echoes -----------------------------------

@pytest.mark.parametrize("body", ["/autoresearch bogus", "/autoresearch", "/autoresearch try"])
def test_a_parse_error_from_someone_without_write_gets_no_answer(night, tmp_path, body):
    world, _ = night
    server = world.server
    server.permissions["passerby"] = "read"
    number = bot_prs(server)[0]
    before = len(server.requests)
    output = send(world, comment_event(world, number, body, "passerby"), tmp_path)
    assert output.strip().splitlines()[-1].startswith("ignored:"), output
    assert not [r for r in server.requests[before:] if r[0] != "GET"]  # no reply, no reaction


def test_help_on_a_pr_that_is_not_the_bots_gets_no_answer(night, tmp_path):
    world, _ = night
    server = world.server
    git(world.bare, "branch", "feature/x", TRACKING)
    number = server.open_pull_as("passerby", "feature/x", "main", "hello", "no marker here")
    before = len(server.requests)
    output = send(world, comment_event(world, number, "/autoresearch help", "passerby"), tmp_path)
    assert "ignored:" in output
    assert not [r for r in server.requests[before:] if r[0] != "GET"]


def test_help_is_answered_after_the_permission_check(night, tmp_path):
    world, _ = night
    server = world.server
    server.permissions.update(passerby="read", writer="write")
    number = bot_prs(server)[0]
    before = len(server.requests)
    send(world, comment_event(world, number, "/autoresearch help", "passerby"), tmp_path)
    answer = replies(server, number, before)
    assert len(answer) == 1 and "needs write permission" in answer[0] and "/autoresearch retry`" not in answer[0]
    before = len(server.requests)
    send(world, comment_event(world, number, "/autoresearch help", "writer"), tmp_path)
    assert "/autoresearch retry` re-run" in replies(server, number, before)[0]


MENTION = re.compile(r"(?<![\w`])@octocat\b")


@pytest.mark.parametrize("body", ["/autoresearch x`@octocat`y", "/autoresearch try `` @octocat `` LR 0.1",
                                  "/autoresearch reject ` @octocat please look"])
def test_replies_never_break_out_of_their_quotes_or_mention_anyone(night, tmp_path, body):
    world, _ = night
    server = world.server
    server.permissions["writer"] = "write"
    number = bot_prs(server)[0]
    before = len(server.requests)
    send(world, comment_event(world, number, body, "writer"), tmp_path)
    answer = replies(server, number, before)
    assert len(answer) == 1
    text = answer[0].split("<!--")[0]
    assert not MENTION.search(text) and "@octocat" not in text, text
    assert text.count("`") % 2 == 0, text  # every code span closes: nothing outside one was opened by the user


def test_a_very_long_try_is_cut_and_its_reply_fits_a_comment(night, tmp_path):
    world, _ = night
    server = world.server
    server.permissions["writer"] = "write"
    number = bot_prs(server)[0]
    idea = "LR 0.1 " + "x" * 65_500
    before = len(server.requests)
    output = send(world, comment_event(world, number, f"/autoresearch try {idea}", "writer"), tmp_path)
    assert "done:" in output, output
    answer = replies(server, number, before)
    assert len(answer) == 1 and len(answer[0]) <= 65_536 and "cut" in answer[0]
    row = ledger_rows(world)[-1]
    assert row["kind"] == "try" and row["text"].startswith("LR 0.1 ") and len(row["text"]) <= 4_000


def test_a_triage_user_is_told_they_have_triage(night, tmp_path):
    world, discarded = night
    server = world.server
    server.permissions["triager"] = "triage"
    output = send(world, comment_event(world, discarded[0], "/autoresearch retry", "triager"), tmp_path)
    assert "you have `triage`" in output and "`read`" not in output, output
