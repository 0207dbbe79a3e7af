"""The report PR lasts a year, and draft refusal does not end a night (issue #11, defects 3
and 4), against the loopback GitHub with github.com's list order, pagination, body limit and
draft rules (tests/github_api/realism.py)."""

import pytest

from bot.config import parse_config
from bot.github.client import GitHub, connect
from bot.github.publisher import Publisher
from bot.gitops import GitRepo

TRACKING, LEDGER = "autoresearch/default", "autoresearch/default-ledger"
WEB = "https://github.example/octo/night"


def _commit_on_tracking(world, n):
    from conftest import git

    git(world.work, "checkout", "-q", "-B", TRACKING, world.bare_sha(TRACKING) or "main")
    (world.work / "train.py").write_text((world.work / "train.py").read_text() + f"\n# kept change {n}\n")
    git(world.work, "commit", "-qam", f"kept change {n}")
    git(world.work, "push", "-q", "origin", TRACKING)
    git(world.work, "checkout", "-q", "main")


@pytest.fixture
def report(github_world):
    """A Publisher on the loopback, the tracking branch one kept commit ahead of main."""
    _commit_on_tracking(github_world, 1)
    gh = GitHub(connect("t", "octo/night", github_world.url, writes_per_minute=0), sleep=lambda s: None)
    events = []
    publisher = Publisher(gh, GitRepo(github_world.work), parse_config({"harness": []}),
                          events=lambda kind, **facts: events.append((kind, facts)))
    publisher.world, publisher.events_seen = github_world, events
    return publisher


def _records(n, keep_every=7):
    """The baseline and `n` experiments: every `keep_every`th kept (metric falling), the rest
    discarded or crashed, each with a PR and a proposer-length description."""
    rows = [{"id": 0, "kind": "baseline", "status": "keep", "metric": 3.5, "description": "baseline"}]
    metric = 3.5
    for i in range(1, n + 1):
        status = "keep" if i % keep_every == 0 else ("crash" if i % 11 == 0 else "discard")
        value = None if status == "crash" else (metric - 0.001 if status == "keep" else metric + 0.002)
        metric = value if status == "keep" else metric
        rows.append({"id": i, "kind": "experiment", "status": status, "metric": value, "pr": i + 1,
                     "evidence": {"delta": None if value is None else value - 3.5},
                     "description": f"LR {0.04 + i / 1e5:.5f} -> {0.04 + (i + 1) / 1e5:.5f}, WIDTH 64 -> {64 + i % 64} "
                                    "and warmup | cosine schedule retuned for the 5-minute budget"})
    return rows


def test_the_report_pr_survives_2000_experiments(report):
    server = report.world.server
    records = _records(2000)
    for n in (10, 900, 2000):  # weeks of nights: the body grows past the limit at ~870 rows today
        number = report.update_report(records[:n + 1])
    assert [p["number"] for p in server.pulls.values()] == [number]  # one report PR, updated in place
    body = server.pulls[number]["body"]
    assert len(body) <= 65536 and len(body.encode()) <= 65536
    assert f"[results.tsv]({WEB}/blob/{LEDGER}/results.tsv)" in body  # the full table, by repository URL
    latest = body[body.index("### Latest experiments"):]
    ids = [int(line.split("|")[1]) for line in latest.splitlines() if line.startswith("| 0") or line.startswith("| 1")
           or line.startswith("| 2")]
    assert ids[:3] == [2000, 1999, 1998] and ids == sorted(ids, reverse=True)  # newest first
    assert 50 <= len(ids) <= 100 and "earlier: [results.tsv]" in latest  # bounded, says where the rest is
    kept = body[body.index("### Kept changes"):body.index("### Latest experiments")]
    assert "| 1995 |" in kept and "| 0007 |" not in kept  # the newest kept changes
    assert "-0.285000" in body  # the cumulative delta (285 keeps of 0.001) is still stated


def test_a_merged_report_pr_is_replaced_at_the_next_kept_change(report):
    server, world = report.world.server, report.world
    records = _records(7)
    first = report.update_report(records)
    world.server.git("update-ref", "refs/heads/main", world.bare_sha(TRACKING))  # a person merges it
    assert report.gh.get_pr(first).merged
    records += _records(8)[8:]  # 0008: discarded; nothing new to report
    assert report.update_report(records) == first and len(server.pulls) == 1
    assert "| 0008 |" not in server.pulls[first]["body"]  # a merged PR is history: left as merged
    _commit_on_tracking(world, 2)
    records += [dict(_records(14)[14], id=9, pr=None)]  # 0009 kept
    second = report.update_report(records)
    assert second != first and server.pulls[second]["state"] == "open"
    assert "| 0009 |" in server.pulls[second]["body"] and server.pulls[first]["merged"]


def test_a_closed_report_pr_is_reopened_at_the_next_kept_change_only(report):
    server, world = report.world.server, report.world
    records = _records(7)
    number = report.update_report(records)
    report.gh.update_pr(report.gh.get_pr(number), state="closed")  # a person closes it
    records += _records(8)[8:]
    report.update_report(records)
    assert server.pulls[number]["state"] == "closed"  # nothing new kept: their choice stands
    _commit_on_tracking(world, 2)
    records += [dict(_records(14)[14], id=9, pr=None)]
    assert report.update_report(records) == number
    assert server.pulls[number]["state"] == "open" and "| 0009 |" in server.pulls[number]["body"]
    assert len(server.pulls) == 1


def test_find_pr_chooses_by_state_and_number_not_list_position(report):
    gh, server = report.gh, report.world.server
    old = gh.ensure_pr(TRACKING, "main", "old report", "old")
    gh.update_pr(old, state="closed")
    new = gh.repo.create_pull(base="main", head=TRACKING, title="new report", body="new")
    assert new.number != old.number
    assert gh.find_pr(TRACKING, "main").number == new.number  # the open one, wherever the list puts it
    gh.update_pr(new, state="closed")
    assert gh.find_pr(TRACKING, "main").number == max(old.number, new.number)  # else the newest
    assert [p["number"] for p in server.pulls.values()] == [old.number, new.number]


def test_a_night_goes_on_when_github_refuses_draft_prs(github_world):
    server = github_world.server
    server.private, server.plan = True, "free"
    result = github_world.run(3)
    assert result.exit_code == 0, result.output
    assert result.output.count("GitHub refuses draft PRs in this repository") == 1  # said once
    creates = [(b["draft"], s) for m, p, b, s in server.requests if m == "POST" and p.endswith("/pulls")
               and b["head"].startswith("autoresearch/default-exp/")]
    assert creates[0] == (True, 422) and all(c == (False, 201) for c in creates[1:])  # asked once, remembered
    experiments = [p for p in server.pulls.values() if p["head"].startswith("autoresearch/default-exp/")]
    assert len(experiments) == 3 and not any(p["draft"] for p in experiments)
    labels = [server.issue_labels[p["number"]] for p in experiments]
    assert all("running" not in lab and len(lab) == 2 for lab in labels)  # running while in flight, then decided
    assert any(m == "POST" and p.endswith("/labels") and b == ["running"] for m, p, b, _ in server.requests)


def test_a_nights_pr_bodies_show_the_whole_diff_the_direction_and_no_cpu_memory(github_world):
    result = github_world.run(1)
    assert result.exit_code == 0, result.output
    pr = next(p for p in github_world.server.pulls.values() if p["head"].startswith("autoresearch/default-exp/"))
    body = pr["body"]
    assert "<details><summary>Full diff</summary>" in body and "```diff\ndiff --git a/train.py b/train.py" in body
    assert "| | val_bpb (lower is better) |" in body
    assert "memory –" in body and "0.0 GB" not in body  # the toy runs on CPU: no VRAM measured
