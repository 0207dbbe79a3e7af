"""The loopback GitHub behaves as github.com does where the bot depends on it (issue #11):
list order, pagination, body size limits, drafts refused by plan (rules and sources in
tests/github_api/realism.py). Raw HTTP where headers matter; PyGithub where the bot's client does."""

import json
import urllib.error
import urllib.request

import pytest

from bot.github.client import connect

EXP = "autoresearch/default-exp/"


@pytest.fixture
def world(github_world):
    """Three experiment branches (each one commit ahead of main) and the tracking branch."""
    from conftest import git

    for n in (1, 2, 3):
        git(github_world.work, "checkout", "-q", "-b", f"{EXP}{n:04d}", "main")
        (github_world.work / "train.py").write_text((github_world.work / "train.py").read_text() + f"\n# {n}\n")
        git(github_world.work, "commit", "-qam", f"change {n}")
        git(github_world.work, "push", "-q", "origin", f"{EXP}{n:04d}")
    git(github_world.work, "push", "-q", "origin", "main:autoresearch/default")
    github_world.repo = connect("t", "octo/night", github_world.url, writes_per_minute=0)
    return github_world


def _http(world, method, path, body=None):
    request = urllib.request.Request(f"{world.url}/repos/octo/night{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def _open(world, n, draft=False, body="b"):
    return _http(world, "POST", "/pulls", {"title": f"t{n}", "head": f"{EXP}{n:04d}", "base": "autoresearch/default",
                                           "body": body, "draft": draft})


def test_pulls_are_listed_newest_first_unless_asked_ascending(world):
    for n in (1, 2, 3):
        assert _open(world, n)[0] == 201
    assert [p["number"] for p in _http(world, "GET", "/pulls?state=all")[1]] == [3, 2, 1]
    assert [p["number"] for p in _http(world, "GET", "/pulls?state=all&direction=asc")[1]] == [1, 2, 3]
    assert [p.number for p in world.repo.get_pulls(state="all")] == [3, 2, 1]  # what the bot sees


def test_lists_come_in_pages_with_a_link_header_that_pygithub_follows(world):
    assert _open(world, 1)[0] == 201
    for i in range(135):
        world.server.add_comment(1, f"comment {i}", "someone")
    status, first, headers = _http(world, "GET", "/issues/1/comments")
    assert status == 200 and len(first) == 30  # GitHub's default page size
    assert 'rel="next"' in headers["Link"] and "page=2" in headers["Link"] and 'rel="last"' in headers["Link"]
    _, capped, headers = _http(world, "GET", "/issues/1/comments?per_page=500&page=2")
    assert len(capped) == 35 and 'rel="next"' not in headers["Link"] and 'rel="prev"' in headers["Link"]
    assert [c["body"] for c in capped][:1] == ["comment 100"]  # per_page is capped at 100, ids ascending
    bodies = [c.body for c in world.repo.get_issue(1).get_comments()]
    assert len(bodies) == 135 and bodies[-1] == "comment 134"
    pages = [r for r in world.server.requests if r[1].endswith("/issues/1/comments") and r[0] == "GET"]
    assert len(pages) >= 2 + 2  # the two raw reads, then PyGithub's pages (100 per page)


@pytest.mark.parametrize("size,status", [(65536, 201), (65537, 422)])
def test_a_pr_body_over_65536_characters_is_refused(world, size, status):
    code, payload, _ = _open(world, 1, body="x" * size)
    assert code == status
    if status == 422:
        assert payload["errors"][0]["message"] == "body is too long (maximum is 65536 characters)"
        assert not world.server.pulls


def test_editing_a_body_or_commenting_over_the_limit_is_refused(world):
    assert _open(world, 1)[0] == 201
    code, payload, _ = _http(world, "PATCH", "/pulls/1", {"body": "y" * 65537})
    assert code == 422 and world.server.pulls[1]["body"] == "b"
    code, payload, _ = _http(world, "POST", "/issues/1/comments", {"body": "z" * 65537})
    assert code == 422 and payload["errors"][0]["resource"] == "IssueComment"
    assert not world.server.comments.get(1)
    assert _http(world, "POST", "/issues/1/comments", {"body": "z" * 65536})[0] == 201


@pytest.mark.parametrize("private,plan,refused", [
    (True, "free", True), (True, "pro", True), (True, "team", False), (True, "enterprise", False),
    (False, "free", False)])
def test_draft_prs_are_refused_in_private_repositories_on_free_and_pro(world, private, plan, refused):
    world.server.private, world.server.plan = private, plan
    code, payload, _ = _open(world, 1, draft=True)
    assert (code == 422) == refused
    if refused:
        assert payload["message"] == "Draft pull requests are not supported in this repository."
        assert _open(world, 1, draft=False)[0] == 201  # a normal PR is fine
    assert _http(world, "GET", "")[1]["private"] is private
