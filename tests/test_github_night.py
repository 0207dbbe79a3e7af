"""Acceptance: a simulated night in GitHub mode against the loopback GitHub and a real bare repo."""

import json

from bot.github import messages


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
        assert pr["state"] == "closed" and not pr["draft"]  # drafted while running, ready once decided
        assert pr["merged"] == (record["status"] == "keep")
        assert github_world.bare_sha(pr["head"]) == record["commit"]  # the diff stays reachable
        assert messages.parse_marker(pr["body"])["id"] == record["id"]
        assert "| delta |" in pr["body"] and "Log tail" not in pr["body"] or record["status"] == "crash"
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
    # The token reached neither the experiments nor anything written to GitHub.
    logs = sorted((github_world.work / ".autoresearch" / "default" / "logs").glob("*.log"))
    assert len(logs) == 5 and all("GITHUB_TOKEN present: False" in log.read_text() for log in logs)
    assert "test-token" not in json.dumps([r[2] for r in server.requests])
    assert sum(server.contract.validated.values()) > 40
    assert server.contract.deviations["graphql-ready"] == 4
    drafts = [b for m, p, b, _ in server.requests if m == "POST" and p.endswith("/pulls") and b["head"] != "autoresearch/default"]
    assert len(drafts) == 4 and all(b["draft"] is True for b in drafts)


def _rows(world):
    return [json.loads(x) for x in world.bare_file("autoresearch/default-ledger", "experiments.jsonl").splitlines()]


def test_kept_only_mode_opens_prs_for_kept_changes_and_lists_the_rest_on_the_report(github_world):
    result = github_world.run(4, "--kept-only")
    assert result.exit_code == 0, result.output
    server = github_world.server
    rows = _rows(github_world)
    kept = [r for r in rows[1:] if r["status"] == "keep"]
    others = [r for r in rows[1:] if r["status"] != "keep"]
    assert len(rows) == 5 and kept and others
    prs = _experiment_prs(server)
    assert sorted(p["head"] for p in prs.values()) == sorted(r["branch"] for r in kept)
    assert all(p["merged"] for p in prs.values())
    report = next(p for p in server.pulls.values() if p["head"] == "autoresearch/default")
    for r in others:  # recorded on the report instead of a PR each
        assert f"| {r['id']:04d} |" in report["body"] and "ledger only" in report["body"]


def test_a_gain_beyond_the_review_bound_is_held_open_with_needs_review(github_world):
    result = github_world.run(2, "--review-bound", "0.001")
    assert result.exit_code == 0, result.output
    server = github_world.server
    rows = _rows(github_world)
    held = [r for r in rows if (r.get("evidence") or {}).get("needs_review")]
    assert held, [r.get("reason") for r in rows]
    assert github_world.bare_sha("autoresearch/default") == rows[0]["commit"]  # nothing merged
    for r in held:
        pr = server.pulls[r["pr"]]
        assert r["status"] == "discard" and r["reason"].startswith("needs review")
        assert "needs-review" in server.issue_labels[r["pr"]] and "running" not in server.issue_labels[r["pr"]]
        assert pr["state"] == "open" and not pr["merged"]
        notes = [c["body"] for c in server.comments[r["pr"]] if "not merged" in c["body"]]
        assert len(notes) == 1


def test_ledger_rebuild_recovers_experiments_from_pr_markers(github_world):
    assert github_world.run(3).exit_code == 0
    before = _rows(github_world)
    server = github_world.server
    server.git("update-ref", "-d", "refs/heads/autoresearch/default-ledger")  # the branch is lost
    import shutil
    shutil.rmtree(github_world.work / ".autoresearch")
    result = github_world.bot("ledger", "rebuild")
    assert result.exit_code == 0, result.output
    after = _rows(github_world)
    assert [r["id"] for r in after] == [r["id"] for r in before if r["kind"] == "experiment"]
    for old, new in zip([r for r in before if r["kind"] == "experiment"], after):
        for field in ("commit", "parent", "status", "metric", "description", "pr"):
            assert new[field] == old[field]


def test_the_next_run_in_a_fresh_clone_resumes_from_the_ledger_branch(github_world, tmp_path):
    from conftest import git

    assert github_world.run(2).exit_code == 0
    fresh = tmp_path / "actions-checkout"  # what the next scheduled Actions run starts from
    git(tmp_path, "clone", "-q", str(github_world.bare), str(fresh))
    github_world.work = fresh
    result = github_world.run(2)
    assert result.exit_code == 0, result.output
    assert "Baseline" not in result.output and "Resuming: 3 ledger row(s)" in result.output
    rows = _rows(github_world)
    assert [r["id"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["kind"] for r in rows].count("baseline") == 1
    prs = _experiment_prs(github_world.server)
    assert len(prs) == 4 and len({p["head"] for p in prs.values()}) == 4
    reports = [p for p in github_world.server.pulls.values() if p["head"] == "autoresearch/default"]
    assert len(reports) <= 1


def test_a_keep_whose_base_moved_is_not_merged_and_the_rerun_rebaselines(github_world):
    from conftest import git

    server = github_world.server
    # Someone pushes to the tracking branch by hand while experiment 1 runs (at its PR creation).
    original = server.handle

    def push_meanwhile(method, template, params, query, body):
        if method == "POST" and template.endswith("/pulls") and not getattr(server, "pushed", False):
            server.pushed = True
            other = github_world.work.parent / "human"
            git(other.parent, "clone", "-q", "-b", "autoresearch/default", str(github_world.bare), str(other))
            (other / "NOTES.md").write_text("a human change\n")
            git(other, "add", "NOTES.md")
            git(other, "-c", "user.name=H", "-c", "user.email=h@e", "commit", "-qm", "notes")
            git(other, "push", "-q", "origin", "autoresearch/default")
        return original(method, template, params, query, body)

    server.handle = push_meanwhile
    result = github_world.run(1)
    rows = _rows(github_world)
    assert rows[-1]["status"] == "keep", rows[-1]  # the toy's first change (WIDTH 64 -> 128) is a gain
    assert result.exit_code == 1 and "kept but" in result.output
    pr = server.pulls[rows[-1]["pr"]]
    assert not pr["merged"] and any("Not merged" in c["body"] for c in server.comments[pr["number"]])
    assert github_world.bare_file("autoresearch/default", "NOTES.md") == "a human change"
    rerun = github_world.run(1)  # finishes without merging an untested combination
    assert rerun.exit_code == 0, rerun.output
    assert "Baseline" in rerun.output  # the new head (with the human's change) is measured first
    assert not server.pulls[rows[-1]["pr"]]["merged"]
    assert len([c for c in server.comments[pr["number"]] if "Not merged" in c["body"]]) == 1
