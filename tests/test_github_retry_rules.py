"""`/autoresearch retry` under GitHub's rules (issue #11, defect 6), against the loopback GitHub.

GitHub reopens a closed PR only while its head branch descends from the head it had when
closed (tests/github_api/server.py `reopen_refusal`); the ledger and GitHub's tracking branch
must agree after every retry; a redelivered event must not run anything twice.
"""

import json

import pytest
from conftest import ScriptedRunner, git, ledger_rows
from test_github_commands import TRACKING, comment_event, send


def handler(world, monkeypatch, metrics):
    """The CommandHandler `bot command` builds, in this process, with a runner whose metrics the
    test chooses (a keep or a discard on demand)."""
    from bot.cli_common import ledger_dir as _ledger_dir
    from bot.cli_common import open_repo as _open
    from bot.github.cli import github_mode
    from bot.github.command_handler import CommandHandler
    from bot.ledger import Ledger
    from bot.loop import ResearchLoop
    from bot.proposers.offline import OfflineProposer

    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    git_repo, config = _open(str(world.work), None, runner="local")
    ledger, publisher = github_mode(git_repo, config, None, False, 0, Ledger(_ledger_dir(git_repo.root, config), config.metric),
                                    lambda kind, **facts: None, reconcile=False)
    loop = ResearchLoop(config, git_repo, ScriptedRunner(metrics), OfflineProposer(config.seed), ledger, publisher=publisher)
    return CommandHandler(publisher.gh, git_repo, config, ledger, publisher, loop)


def move_tracking(world, tmp_path):
    """A kept change to another file moves the tracking head (with its ledger row), as a night would."""
    clone = tmp_path / "mover"
    git(tmp_path, "clone", "-q", "-b", TRACKING, str(world.bare), str(clone))
    git(clone, "config", "user.name", "T")
    git(clone, "config", "user.email", "t@example.com")
    (clone / "NOTES.md").write_text("notes\n")
    git(clone, "add", "NOTES.md")
    git(clone, "commit", "-qm", "notes")
    old, new = git(clone, "rev-parse", "HEAD~1"), git(clone, "rev-parse", "HEAD")
    git(clone, "push", "-q", "origin", f"HEAD:{TRACKING}")
    rows = ledger_rows(world)
    last = next(r for r in reversed(rows) if r["status"] == "keep" and r["commit"] == old)
    row = dict(last, id=max(r["id"] for r in rows) + 1, commit=new, parent=old, pr=None, description="notes")
    lines = world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl") + "\n" + json.dumps(row) + "\n"
    git(clone, "fetch", "-q", "origin", f"{TRACKING}-ledger")
    git(clone, "checkout", "-q", "FETCH_HEAD")
    (clone / "experiments.jsonl").write_text(lines)
    git(clone, "commit", "-qam", "ledger: notes")
    git(clone, "push", "-q", "origin", f"HEAD:{TRACKING}-ledger")
    return new


@pytest.mark.parametrize("branch_deleted", [False, True], ids=["branch-kept", "branch-deleted"])
def test_a_keep_on_a_closed_pr_whose_base_moved_reopens_then_merges(night, tmp_path, monkeypatch, branch_deleted):
    world, discarded = night
    server = world.server
    number = discarded[0]
    pr = server.pulls[number]
    assert pr["state"] == "closed"
    head = move_tracking(world, tmp_path)
    if branch_deleted:
        git(world.bare, "branch", "-D", pr["head"])
    server.permissions["writer"] = "write"
    event = comment_event(world, number, "/autoresearch retry", "writer")
    outcome, detail = handler(world, monkeypatch, [0.5]).handle(event)
    rows = ledger_rows(world)
    assert outcome == "done" and rows[-1]["kind"] == "retry" and rows[-1]["status"] == "keep", (outcome, detail)
    assert rows[-1]["parent"] == head
    assert world.bare_sha(TRACKING) == rows[-1]["commit"]  # the ledger and GitHub agree
    server.refresh(pr)
    assert pr["merged"] and pr["head_sha"] == rows[-1]["commit"] and "kept" in server.issue_labels[number]


def test_reconcile_moves_githubs_tracking_branch_for_a_recorded_keep(night, tmp_path, monkeypatch):
    world, discarded = night
    server = world.server
    move_tracking(world, tmp_path)
    server.permissions["writer"] = "write"
    # The fast-forward fails after the keep row is written (as if the job were killed there).
    server.fail("PATCH", f"/git/refs/heads/{TRACKING}", 409, message="Git Repository is empty.")
    event = comment_event(world, discarded[0], "/autoresearch retry", "writer")
    handler(world, monkeypatch, [0.5]).handle(event)
    server.faults.clear()
    kept = [r for r in ledger_rows(world) if r["status"] == "keep"][-1]
    result = world.run(1)
    assert result.exit_code == 0, result.output
    assert server.is_ancestor(kept["commit"], world.bare_sha(TRACKING)), "GitHub's tracking never got the recorded keep"


def test_retry_on_a_merged_kept_pr_says_so_and_changes_nothing(night, tmp_path):
    world, _ = night
    server = world.server
    kept = [r for r in ledger_rows(world) if r["kind"] == "experiment" and r["status"] == "keep"][-1]
    server.permissions["writer"] = "write"
    labels = list(server.issue_labels[kept["pr"]])
    rows_before = ledger_rows(world)
    refs_before = server.git("for-each-ref", "--format=%(refname) %(objectname)").stdout
    output = send(world, comment_event(world, kept["pr"], "/autoresearch retry", "writer"), tmp_path)
    assert "already merged" in output, output
    assert server.issue_labels[kept["pr"]] == labels and "discarded" not in labels
    assert ledger_rows(world) == rows_before
    assert server.git("for-each-ref", "--format=%(refname) %(objectname)").stdout == refs_before
    reply = server.comments[kept["pr"]][-1]["body"]
    assert "already merged" in reply and "/autoresearch revert" in reply


def test_a_redelivered_retry_runs_once(night, tmp_path):
    world, discarded = night
    world.server.permissions["writer"] = "write"
    event = comment_event(world, discarded[0], "/autoresearch retry", "writer")
    assert "done: retry 1" in send(world, event, tmp_path)
    output = send(world, event, tmp_path)  # Actions re-run, or the webhook delivered twice
    assert "retry 2" not in output, output
    assert [r["kind"] for r in ledger_rows(world)].count("retry") == 1


@pytest.mark.parametrize("body", ["/autoresearch try LR 0.2", "/autoresearch reject too slow"])
def test_a_redelivered_try_or_reject_is_recorded_once(night, tmp_path, body):
    world, discarded = night
    world.server.permissions["writer"] = "write"
    event = comment_event(world, discarded[0], body, "writer")
    send(world, event, tmp_path)
    send(world, event, tmp_path)
    kind = body.split()[1]
    assert [r["kind"] for r in ledger_rows(world)].count(kind) == 1
