"""bot/github/client.py under injected faults: 5xx on POST (done or not), 403 secondary rate limit,
429 with Retry-After, 409/422 on ref updates and merges. Through real PyGithub, contract on."""

import pytest

from bot.errors import BotError
from bot.github.client import GitHub, StaleError, connect

SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


@pytest.fixture
def gh(github_world):
    sleeps = []
    world = github_world
    from conftest import git

    git(world.work, "checkout", "-q", "-b", "autoresearch/default-exp/0001")
    (world.work / "train.py").write_text((world.work / "train.py").read_text().replace("LR = 0.04", "LR = 0.05"))
    git(world.work, "commit", "-qam", "lr")
    git(world.work, "push", "-q", "origin", "autoresearch/default-exp/0001", "main:autoresearch/default")
    client = GitHub(connect("t", "octo/night", world.url, retry_wait=0.01, writes_per_minute=0), sleep=sleeps.append)
    client.sleeps, client.world = sleeps, world
    return client


def _open(gh):
    return gh.ensure_pr("autoresearch/default-exp/0001", "autoresearch/default", "t", "body", draft=True)


@pytest.mark.parametrize("apply", [False, True], ids=["failed-before-acting", "acted-then-failed"])
@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_creating_a_pr_never_duplicates_it(gh, status, apply):
    gh.world.server.fail("POST", "/pulls", status, apply=apply)
    pr = _open(gh)
    assert len(gh.world.server.pulls) == 1 and pr.number == 1
    assert len(gh.sleeps) == 1
    creates = gh.world.server.writes("POST", "/pulls")
    assert len(creates) == (1 if apply else 2)  # when it was done, the lookup found it: no second POST


def test_5xx_on_a_comment_after_it_was_stored_posts_it_once(gh):
    pr = _open(gh)
    gh.world.server.fail("POST", "/comments", 502, apply=True)
    gh.comment_once(pr.number, "hello <!-- k1 -->", "k1")
    gh.comment_once(pr.number, "hello <!-- k1 -->", "k1")  # a rerun
    assert [c["body"] for c in gh.world.server.comments[pr.number]] == ["hello <!-- k1 -->"]


def test_403_secondary_rate_limit_on_a_write_waits_and_retries(gh):
    pr = _open(gh)
    gh.world.server.fail("POST", "/labels", 403, message=SECONDARY)
    gh.set_status(pr, "running")
    assert sorted(gh.world.server.issue_labels[pr.number]) == ["autoresearch", "running"]
    assert gh.sleeps  # it waited before retrying


def test_403_secondary_rate_limit_on_a_read_is_retried_by_githubretry(gh):
    gh.world.server.fail("GET", "/git/ref/heads/main", 403, message=SECONDARY)
    assert gh.branch_sha("main") == gh.world.bare_sha("main")
    assert [r[3] for r in gh.world.server.requests if r[1].endswith("/git/ref/heads/main")] == [403, 200]


def test_429_with_retry_after_waits_that_long(gh):
    pr = _open(gh)
    gh.world.server.fail("PATCH", f"/pulls/{pr.number}", 429, headers={"Retry-After": "7"})
    gh.update_pr(pr, body="new body")
    assert gh.sleeps == [7.0]
    assert gh.world.server.pulls[pr.number]["body"] == "new body"


def test_429_on_a_read_is_retried_by_githubretry_honouring_retry_after(gh):
    gh.world.server.fail("GET", "/pulls", 429, headers={"Retry-After": "0"})
    assert _open(gh).number == 1


def test_a_persistent_5xx_ends_with_an_error_that_says_to_rerun(gh):
    gh.world.server.fail("POST", "/pulls", 502, times=10)
    with pytest.raises(BotError, match="Rerun the same command"):
        _open(gh)
    assert not gh.world.server.pulls


@pytest.mark.parametrize("status", [409, 422])
def test_409_or_422_on_the_fast_forward_is_stale_and_moves_nothing(gh, status):
    world = gh.world
    before = world.bare_sha("autoresearch/default")
    world.server.fail("PATCH", "/git/refs/heads/autoresearch/default", status)
    with pytest.raises(StaleError):
        gh.fast_forward("autoresearch/default", world.bare_sha("autoresearch/default-exp/0001"), before)
    assert world.bare_sha("autoresearch/default") == before


def test_fast_forward_refuses_when_the_tracking_branch_moved(gh):
    world = gh.world
    head = world.bare_sha("autoresearch/default")
    with pytest.raises(StaleError, match="stale"):
        gh.fast_forward("autoresearch/default", world.bare_sha("autoresearch/default-exp/0001"), "0" * 40)
    assert world.bare_sha("autoresearch/default") == head
    assert not world.server.writes("PATCH")


def test_fast_forward_marks_the_pr_merged_and_a_repeat_is_a_no_op(gh):
    world = gh.world
    pr = _open(gh)
    new = world.bare_sha("autoresearch/default-exp/0001")
    gh.fast_forward("autoresearch/default", new, world.bare_sha("autoresearch/default"))
    gh.fast_forward("autoresearch/default", new, "whatever: already there")
    assert gh.get_pr(pr.number).merged
    assert len(world.server.writes("PATCH", "/git/refs/")) == 1


def test_labels_people_added_survive_status_changes(gh):
    pr = _open(gh)
    pr.add_to_labels("needs-discussion")  # a person's label
    gh.set_status(pr, "running")
    gh.set_status(pr, "kept")
    assert sorted(gh.world.server.issue_labels[pr.number]) == ["autoresearch", "kept", "needs-discussion"]
    assert not [r for r in gh.world.server.requests if r[0] == "PUT"]  # never set_labels (replace all)


# ---- issue #11, defect 8: rulesets on autoresearch/* and a label someone else removed ----------

def test_a_ruleset_on_the_bots_branches_stops_the_run_with_one_clear_error(github_world):
    world = github_world
    world.server.protect("autoresearch/**")
    result = world.run(1)
    assert result.exit_code != 0
    assert "keeps pushing" not in result.output and "/autoresearch retry" not in result.output, result.output
    assert "Cannot update this protected ref" in result.output and "autoresearch/" in result.output, result.output
    assert "bypass" in result.output, result.output  # the fix: let the bot's token bypass the rule
    assert result.output.count("Error:") == 1


def test_a_ruleset_refusing_the_fast_forward_is_not_called_stale(gh):
    from bot.github.client import ProtectedError

    gh.world.server.protect("autoresearch/default", "Changes must be made through a pull request.")
    main = gh.branch_sha("main")
    with pytest.raises(ProtectedError) as caught:
        gh.fast_forward("autoresearch/default", gh.branch_sha("autoresearch/default-exp/0001"), main)
    assert not isinstance(caught.value, StaleError)
    assert "Changes must be made through a pull request" in str(caught.value) and "bypass" in str(caught.value)


def test_a_label_someone_already_removed_is_not_an_error(gh):
    pr = _open(gh)
    gh.set_status(pr, "running")
    # Someone removes `running` by hand between our read of the labels and our DELETE: GitHub 404s.
    gh.world.server.fail("DELETE", "/labels/running", 404, apply=True, message="Label does not exist")
    gh.set_status(pr, "kept")
    assert gh.labels(pr.number) == ["autoresearch", "kept"]


@pytest.mark.parametrize("text,rule", [
    ("`git push --quiet origin a:refs/heads/autoresearch/x` failed: remote: error: GH006: Protected branch update "
     "failed for refs/heads/autoresearch/x.\nremote: error: Cannot force-push to a protected branch.\nTo https://github.com/o/r\n"
     " ! [remote rejected] autoresearch/x -> autoresearch/x (protected branch hook declined)", "Cannot force-push to a protected branch."),
    ("remote: error: GH013: Repository rule violations found for refs/heads/autoresearch/x.\nremote: Review all repository "
     "rules at https://github.com/o/r/rules?ref=refs%2Fheads%2Fautoresearch%2Fx\nremote:\nremote: - Changes must be made "
     "through a pull request.\n ! [remote rejected] HEAD -> autoresearch/x (push declined due to repository rule violations)",
     "Changes must be made through a pull request."),
    ("Repository rule violations found\n\nCannot update this protected ref.\n\n", "Cannot update this protected ref."),
])
def test_protection_refusal_names_the_rule_and_the_fix(text, rule):
    from bot.github.client import protection_refusal

    message = protection_refusal(text, "autoresearch/x")
    assert f"({rule})" in message and "bypass list" in message and "`autoresearch/x`" in message


def test_other_push_failures_are_not_called_protection():
    from bot.github.client import protection_refusal

    assert protection_refusal(" ! [rejected] x -> x (fetch first)\nerror: failed to push some refs", "x") is None
