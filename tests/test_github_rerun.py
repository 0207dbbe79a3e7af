"""Idempotency: `bot run` killed (SIGKILL, by the loopback server at an exact request) and rerun
leaves no duplicate PR, comment or label, and loses no recorded experiment."""

import collections
import json
import os
import subprocess
import sys

import pytest

from bot.github import messages

TRACKING = "autoresearch/default"


def _is_status_label(body):
    labels = body if isinstance(body, list) else (body or {}).get("labels", [])
    return any(name in ("kept", "discarded", "crashed") for name in labels)


KILL_POINTS = {
    # name: (method, path contains, after the server acted?, body predicate)
    "after-push": ("POST", "/pulls", False, None),
    "after-pr-creation": ("POST", "/pulls", True, None),
    "after-labelling": ("POST", "/labels", True, _is_status_label),
    "before-merge": ("PATCH", f"/git/refs/heads/{TRACKING}", False, None),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_and_rerun_creates_no_duplicates(github_world, point):
    method, contains, after, match = KILL_POINTS[point]
    process = {}
    github_world.server.kill_on(method, contains, lambda: process["p"].pid, after=after, match=match)
    env = {**os.environ, **github_world.env}
    process["p"] = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--local", "--iterations", "3", "--writes-per-minute", "0",
         "--repo", str(github_world.work)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process["p"].communicate(timeout=120)
    assert process["p"].returncode == -9, f"the bot was not killed at {point}:\n{output}"

    result = github_world.run(2)
    assert result.exit_code == 0, result.output
    server = github_world.server
    heads = collections.Counter((p["head"], p["base"]) for p in server.pulls.values())
    assert max(heads.values()) == 1, heads
    for number, comments in server.comments.items():
        bodies = collections.Counter(c["body"] for c in comments)
        assert max(bodies.values()) == 1, bodies
    for number, labels in server.issue_labels.items():
        assert len(labels) == len(set(labels))
    rows = [json.loads(x) for x in github_world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) and rows[0]["kind"] == "baseline"
    experiments = [r for r in rows if r["kind"] == "experiment"]
    assert len(experiments) >= 2
    by_head = {p["head"]: p for p in server.pulls.values()}
    for record in experiments:  # every recorded experiment is published and finished
        pr = by_head[record["branch"]]
        server.refresh(pr)
        word = {"keep": "kept", "discard": "discarded", "crash": "crashed"}[record["status"]]
        assert word in server.issue_labels[pr["number"]] and "running" not in server.issue_labels[pr["number"]]
        assert pr["state"] == "closed" and pr["merged"] == (record["status"] == "keep")
        assert messages.parse_marker(pr["body"])["id"] == record["id"]
    kept = [r for r in experiments if r["status"] == "keep"]
    assert github_world.bare_sha(TRACKING) == (kept[-1]["commit"] if kept else rows[0]["commit"])
    for pr in server.pulls.values():  # an experiment killed mid-run was closed with a note, not left running
        if pr["head"].startswith(f"{TRACKING}-exp/") and pr["head"] not in {r["branch"] for r in experiments}:
            assert pr["state"] == "closed"
            assert any("stopped before this experiment finished" in c["body"] for c in server.comments[pr["number"]])
