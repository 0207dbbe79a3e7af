"""Acceptance: a simulated night in GitHub mode against the loopback GitHub and a real bare repo."""

import json

from bot import messages


def _experiment_prs(server):
    return {n: p for n, p in server.pulls.items() if p["head"].startswith("autoresearch/default-exp/")}


def test_a_night_opens_a_pr_per_experiment_merges_winners_and_reports(github_world):
    result = github_world.run(4)
    assert result.exit_code == 0, result.output
    server = github_world.server
    prs = _experiment_prs(server)
    assert len(prs) == 4
    rows = [json.loads(line) for line in github_world.bare_file("autoresearch/default-ledger", "experiments.jsonl").splitlines()]
    assert [r["kind"] for r in rows] == ["baseline"] + ["experiment"] * 4
    by_pr = {r["pr"]: r for r in rows if r["kind"] == "experiment"}
    assert set(by_pr) == set(prs)
    tracking = github_world.bare_sha("autoresearch/default")
    kept = [r for r in rows if r["kind"] == "experiment" and r["status"] == "keep"]
    assert kept and any(r["status"] != "keep" for r in rows[1:]), [r["status"] for r in rows]
    assert tracking == kept[-1]["commit"]
    for number, pr in prs.items():
        record = by_pr[number]
        labels = server.issue_labels[number]
        word = {"keep": "kept", "discard": "discarded", "crash": "crashed"}[record["status"]]
        assert sorted(labels) == sorted(["autoresearch", word]), labels
        assert pr["state"] == "closed"
        assert pr["merged"] == (record["status"] == "keep")
        assert github_world.bare_sha(pr["head"]) == record["commit"]  # the diff stays reachable
        assert messages.parse_marker(pr["body"])["id"] == record["id"]
        assert "| delta |" in pr["body"] and "<details>" not in pr["body"] or record["status"] == "crash"
    # A kept PR's head is on the tracking branch: it was fast-forwarded, never merge-committed.
    assert all(server.is_ancestor(server.pulls[r["pr"]]["head_sha"], tracking) for r in kept)
    report = [p for p in server.pulls.values() if p["head"] == "autoresearch/default"]
    assert len(report) == 1 and report[0]["base"] == "main"
    delta = kept[-1]["metric"] - rows[0]["metric"]
    assert f"{delta:+.6f}" in report[0]["body"] and f"{delta:+.6f}" in report[0]["title"]
    # No merge button: nothing ever PUT to /merge; merges are ref updates with force=false.
    assert not github_world.server.writes("PUT")
    assert all(body == {"sha": body["sha"], "force": False}
               for method, path, body, _ in server.requests if method == "PATCH" and "/git/refs/" in path)
    assert sum(server.contract.validated.values()) > 40
