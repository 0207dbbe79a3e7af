"""`bot command --event PATH` against the loopback GitHub: who may retry, and what a retry does.

Events start from @octokit/webhooks-examples (issue_comment.created) and are validated against
@octokit/openapi-webhooks before and after we turn them into a comment on a bot PR.
"""

import copy
import json

import pytest
from github_api.contract import HERE, complete_example, validate_event, webhook_contract

from bot.github import messages

TRACKING = "autoresearch/default"
HOOKS = webhook_contract()


def comment_event(world, number, body, login, action="created", kind="User"):
    base = complete_example(HOOKS, json.loads((HERE / f"issue_comment.{action}.json").read_text()))
    validate_event(HOOKS, f"issue-comment-{action}", base)
    event = copy.deepcopy(base)
    comment_id = world.server.add_comment(number, body, login)
    event["issue"]["number"] = number
    html = f"https://github.example/octo/night/pull/{number}"
    event["issue"]["pull_request"] = {"url": world.server.url(f"/pulls/{number}"), "html_url": html,
                                      "diff_url": f"{html}.diff", "patch_url": f"{html}.patch"}
    event["comment"].update(id=comment_id, body=body)
    event["comment"]["user"].update(login=login, type=kind)
    event["repository"].update(name="night", full_name="octo/night")
    validate_event(HOOKS, f"issue-comment-{action}", event)
    return event


def send(world, event, tmp_path):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    result = world.bot("command", "--event", str(path), "--local", "--writes-per-minute", "0")
    assert result.exit_code == 0, result.output
    return result.output


def test_read_only_user_cannot_retry_and_is_told_why(night, tmp_path):
    world, _ = night
    server = world.server
    number = min(n for n, p in server.pulls.items() if p["head"].startswith(f"{TRACKING}-exp/"))
    server.permissions["reader"] = "read"
    before_ledger = world.bare_sha(f"{TRACKING}-ledger")
    before = len(server.requests)
    event = comment_event(world, number, "/autoresearch retry", "reader")
    output = send(world, event, tmp_path)
    assert output.strip().endswith("`/autoresearch retry` needs write permission on this repository; you have `read`. "
                                   "Ask a maintainer to run it, or to give you write access.")
    new = server.requests[before:]
    paths = [(m, p) for m, p, _, _ in new]
    assert ("GET", "/repos/octo/night/collaborators/reader/permission") in paths
    reactions = [b["content"] for m, p, b, _ in new if p.endswith("/reactions")]
    assert reactions == ["eyes", "confused"]
    replies = [b["body"] for m, p, b, _ in new if m == "POST" and p.endswith(f"/issues/{number}/comments")]
    assert len(replies) == 1 and "needs write permission" in replies[0] and "@reader" in replies[0]
    assert not [p for m, p, _, _ in new if m == "PATCH"]  # no PR edit, no ref update
    assert world.bare_sha(f"{TRACKING}-ledger") == before_ledger  # nothing ran
    # Delivered twice (Actions re-run): still one reply.
    send(world, event, tmp_path)
    assert len([c for c in server.comments[number] if "needs write permission" in c["body"]]) == 1


def test_writer_retry_reevaluates_pools_samples_and_updates_the_pr(night, tmp_path):
    world, discarded = night
    server = world.server
    assert discarded, "the toy night should discard one change"
    number = discarded[0]
    server.permissions["writer"] = "write"
    rows_before = world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()
    before = len(server.requests)
    output = send(world, comment_event(world, number, "/autoresearch retry", "writer"), tmp_path)
    assert "done: retry 1" in output, output
    new = server.requests[before:]
    reactions = [b["content"] for m, p, b, _ in new if p.endswith("/reactions")]
    assert reactions == ["eyes", "rocket"]
    body = server.pulls[number]["body"]
    assert "### Retry 1" in body
    data = messages.parse_marker(body)
    assert len(data["retries"]) == 1 and data["retries"][0]["by"] == "writer"
    rows = [json.loads(x) for x in world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]
    assert len(rows) == len(rows_before) + 1
    retry = rows[-1]
    assert retry["kind"] == "retry" and retry["pr"] == number
    original = next(r for r in rows if r.get("pr") == number and r["kind"] == "experiment")
    assert original["parent"] == retry["parent"]  # same base: the earlier sample is pooled, not replaced
    assert retry["samples"][0] == original["metric"] and len(retry["samples"]) == 2
    assert retry["metric"] == sum(retry["samples"]) / 2
    word = {"keep": "kept", "discard": "discarded", "crash": "crashed"}[retry["status"]]
    assert word in server.issue_labels[number]
    pr = server.pulls[number]
    server.refresh(pr)
    assert pr["merged"] == (retry["status"] == "keep")
    assert not [r for r in new if r[0] == "PUT"]


@pytest.mark.parametrize("action,body,login,kind,why", [
    ("edited", "/autoresearch retry", "writer", "User", "edited"),
    ("created", "/autoresearch retry", "github-actions[bot]", "Bot", "bot"),
    ("created", "nice work", "writer", "User", "no /autoresearch command"),
    ("created", "/autoresearch retry", "writer", "User", "not an autoresearch experiment PR"),
])
def test_events_that_are_not_commands_are_ignored_without_writes(night, tmp_path, action, body, login, kind, why):
    world, _ = night
    number = min(n for n, p in world.server.pulls.items() if p["head"].startswith(f"{TRACKING}-exp/"))
    if why == "not an autoresearch experiment PR":
        number = next(n for n, p in world.server.pulls.items() if p["head"] == TRACKING)  # the report PR
    event = comment_event(world, number, body, login, action=action, kind=kind)
    before = len(world.server.requests)
    output = send(world, event, tmp_path)
    assert output.strip().splitlines()[-1].startswith("ignored:") and why in output
    assert not [r for r in world.server.requests[before:] if r[0] != "GET"]


def test_retry_of_a_change_that_no_longer_applies_replies_naming_the_conflict(github_world, tmp_path):
    world = github_world
    assert world.run(4).exit_code == 0
    server = world.server
    rows = [json.loads(x) for x in world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]
    head = world.bare_sha(TRACKING)
    stale = [r for r in rows if r["kind"] == "experiment" and r["status"] != "keep" and r["parent"] != head]
    assert stale, [(r["status"], r["parent"][:7] if r["parent"] else None) for r in rows]
    original = stale[0]  # WIDTH changed on a head whose adjacent LR line has changed since: git conflicts
    server.permissions["maintainer"] = "maintain"
    ledger_before = world.bare_sha(f"{TRACKING}-ledger")
    body_before = server.pulls[original["pr"]]["body"]
    before = len(server.requests)
    output = send(world, comment_event(world, original["pr"], "/autoresearch retry", "maintainer"), tmp_path)
    assert "failed: the change no longer applies" in output and "conflicts in train.py" in output
    new = server.requests[before:]
    assert [b["content"] for m, p, b, _ in new if p.endswith("/reactions")] == ["eyes", "confused"]
    replies = [b["body"] for m, p, b, _ in new if m == "POST" and p.endswith(f"/issues/{original['pr']}/comments")]
    assert len(replies) == 1 and "conflicts in train.py" in replies[0]
    assert world.bare_sha(f"{TRACKING}-ledger") == ledger_before and world.bare_sha(TRACKING) == head
    assert server.pulls[original["pr"]]["body"] == body_before


def test_revert_undoes_a_kept_change_as_a_measured_experiment(night, tmp_path):
    world, discarded = night
    server = world.server
    rows = [json.loads(x) for x in world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]
    kept = [r for r in rows if r["kind"] == "experiment" and r["status"] == "keep"]
    assert kept and world.bare_sha(TRACKING) == kept[-1]["commit"]
    target = kept[-1]
    server.permissions["writer"] = "write"
    output = send(world, comment_event(world, target["pr"], "/autoresearch revert", "writer"), tmp_path)
    assert "done: reverted as" in output, output
    after = [json.loads(x) for x in world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]
    revert = after[-1]
    assert revert["kind"] == "revert" and revert["reverts"] == target["id"] and revert["status"] == "keep"
    assert world.bare_sha(TRACKING) == revert["commit"]
    assert server.git("show", f"{revert['commit']}:train.py").stdout == server.git("show", f"{target['parent']}:train.py").stdout
    assert {"kept", "reverted"} <= set(server.issue_labels[target["pr"]])
    # Asked again: nothing runs twice.
    output = send(world, comment_event(world, target["pr"], "/autoresearch revert", "writer"), tmp_path)
    assert "already reverted" in output
    assert len([json.loads(x) for x in world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]) == len(after)
    # A discarded change cannot be reverted: the reply says why.
    output = send(world, comment_event(world, discarded[0], "/autoresearch revert", "writer"), tmp_path)
    assert "failed: only a kept, merged change can be reverted" in output
    # The next night resumes from the reverted head without a new baseline.
    result = world.run(1)
    assert result.exit_code == 0 and "Baseline" not in result.output, result.output


def test_retry_works_after_the_closed_branch_was_deleted_in_a_fresh_clone(github_world, tmp_path):
    from conftest import git

    world = github_world
    assert world.run(2, "--delete-closed-branches").exit_code == 0
    server = world.server
    rows = [json.loads(x) for x in world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]
    closed = [r for r in rows if r["kind"] == "experiment" and r["status"] != "keep"]
    kept = [r for r in rows if r["kind"] == "experiment" and r["status"] == "keep"]
    assert closed and kept
    assert all(world.bare_sha(r["branch"]) is None for r in closed)  # retention: deleted
    assert all(world.bare_sha(r["branch"]) == r["commit"] for r in kept)
    assert all(server.ref_sha(f"pull/{r['pr']}/head") == r["commit"] for r in closed)  # GitHub keeps the commits
    fresh = tmp_path / "actions-checkout"
    git(tmp_path, "clone", "-q", str(world.bare), str(fresh))
    world.work = fresh
    server.permissions["writer"] = "write"
    output = send(world, comment_event(world, closed[0]["pr"], "/autoresearch retry", "writer"), tmp_path)
    assert "done: retry 1" in output, output
    assert world.bare_sha(closed[0]["branch"]) == closed[0]["commit"]  # restored for the PR


def test_a_queued_retry_is_done_once_by_the_next_run(night, tmp_path):
    world, discarded = night
    server = world.server
    server.permissions["writer"] = "write"
    number = discarded[0]
    event = comment_event(world, number, "/autoresearch retry", "writer")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    for _ in range(2):  # the event delivered twice: one request
        result = world.bot("command", "--event", str(path), "--local", "--writes-per-minute", "0", "--queue")
        assert result.exit_code == 0 and "queued: retry" in result.output, result.output
    rows = [json.loads(x) for x in world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]
    requests = [r for r in rows if r["kind"] == "request"]
    assert len(requests) == 1 and "### Retry 1" not in server.pulls[number]["body"]
    assert server.reactions[event["comment"]["id"]] == ["eyes", "eyes"]  # acknowledged, not done yet
    result = world.run(1)
    assert result.exit_code == 0 and "Queued command done: retry 1" in result.output, result.output
    assert "### Retry 1" in server.pulls[number]["body"]
    assert server.reactions[event["comment"]["id"]][-1] == "rocket"
    result = world.run(1)
    assert "Queued command" not in result.output
    rows = [json.loads(x) for x in world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]
    assert [r["kind"] for r in rows].count("retry") == 1 and [r["kind"] for r in rows].count("handled") == 1
    assert [r["kind"] for r in rows].count("experiment") == 4
