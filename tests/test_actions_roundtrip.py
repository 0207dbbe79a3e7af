"""Comment → commands.yml's own `run:` lines → a workflow_dispatch the loopback records →
autoresearch.yml's `run:` lines with a Modal stand-in → the result as a comment (issue #11,
defects 1, 5 and 9), with the shipped autoresearch.yaml (`runner: modal`).

Simulated: the Actions runner (tests/actions_runner.py: jobs, `if:`, reusable workflows, env
expressions), GitHub's concurrency groups (`group_survivors`, from GitHub's documented rule),
Modal (tests/modal_standin: the job body runs in a thread of the bot's process on this CPU).
"""

import json
import time

import actions_runner as ar
import pytest
from github_api import server as loopback
from test_github_commands import TRACKING, comment_event
from test_workflows import use_shipped_settings

JOB_TOKEN = "job-token"  # the run's own GITHUB_TOKEN: what it pushes and opens starts no workflow
APP_TOKEN = "app-token"  # BOT_TOKEN: a fine-grained PAT (what the README calls for)


@pytest.fixture
def tokens(monkeypatch):
    """Which token each request to the loopback carried (GitHub: events caused by GITHUB_TOKEN
    start no workflow run, except workflow_dispatch and repository_dispatch)."""
    seen = []
    original = loopback._Handler._serve

    def serve(self, method):
        seen.append((method, self.path.split("?")[0], (self.headers.get("Authorization") or "").split()[-1]))
        return original(self, method)

    monkeypatch.setattr(loopback._Handler, "_serve", serve)
    return seen


def group_survivors(arrivals, group_of):
    """GitHub's concurrency rule for runs queued while the group's first run is in progress: "at
    most one running and one pending job ... any existing pending job ... will be canceled"."""
    running, pending, cancelled = {}, {}, []
    for run in arrivals:
        group = group_of(run)
        if group is None:
            continue
        if group not in running:
            running[group] = run
        else:
            if group in pending:
                cancelled.append(pending[group])
            pending[group] = run
    return [r for r in arrivals if r not in cancelled]


def concurrency_group(workflow_file, event_name, event, inputs=None):
    """The concurrency groups the event's jobs join, at workflow or job level, reusable workflows
    followed; None when none."""
    workflow = ar.load(workflow_file)
    if workflow.get("concurrency"):
        return str(workflow["concurrency"]["group"] if isinstance(workflow["concurrency"], dict)
                   else workflow["concurrency"]).replace("${{ github.event.issue.number }}", str(event["issue"]["number"]))
    groups = [ar.substitute((job.get("concurrency") or {}).get("group"), context)
              for _, job, context in ar.jobs_for(workflow_file, event_name, event, inputs)]
    return ",".join(g for g in groups if g) or None


def discarded_prs(world):
    return [n for n, p in world.server.pulls.items() if p["head"].startswith(f"{TRACKING}-exp/")
            and "discarded" in world.server.issue_labels[n]]


def test_comments_arriving_together_are_each_recorded(github_world, tmp_path):
    """Defect 5: three comments on one PR while the first one's run is in progress: a cancelling
    group keeps the first and the last; recording must keep all three."""
    world = github_world
    events = []
    for body in ("/autoresearch retry", "/autoresearch try lower LR", "/autoresearch reject too slow"):
        event = comment_event(world, 1, body, "writer")
        events.append(event)
    survivors = group_survivors(events, lambda e: concurrency_group(ar.WORKFLOWS / "commands.yml", "issue_comment", e))
    assert survivors == events, f"{len(events) - len(survivors)} of {len(events)} commands cancelled before recording"


def test_a_cancelled_pending_command_run_loses_nothing():
    """The dispatched runs share one group (one at a time): a cancelled pending run is harmless
    because each run drains every request queued on the ledger branch; a night is never in it."""
    dispatch = {"mode": "commands"}
    commands = concurrency_group(ar.WORKFLOWS / "autoresearch.yml", "workflow_dispatch", {}, dispatch)
    night = concurrency_group(ar.WORKFLOWS / "autoresearch.yml", "schedule", {})
    assert commands and night and commands != night
    job = dict(ar.jobs_for(ar.WORKFLOWS / "autoresearch.yml", "workflow_dispatch", {}, dispatch)[0][1])
    run = next(s["run"] for s in job["steps"] if s.get("name") == "Experiments")
    assert "bot drain" in run


def run_workflow(world, tmp_path, workflow, event_name, event, shims, inputs=None, secrets=None, extra_env=None):
    event_path = ar.write_event(tmp_path, event, f"{event_name}.json")
    env = ar.runner_env(world, tmp_path, event_path, shims, extra_env)
    outputs = []
    for name, job, context in ar.jobs_for(ar.WORKFLOWS / workflow, event_name, event, inputs, secrets, JOB_TOKEN):
        outputs += ar.run_job(job, context, world.work, env)
    return outputs


def check(outputs):
    for name, done in outputs:
        assert done.returncode == 0, f"step {name!r} failed:\n{done.stdout}\n{done.stderr}"
    return "\n".join(done.stdout + done.stderr for _, done in outputs)


def test_a_retry_comment_is_done_within_minutes_and_answered_with_a_comment(github_world, tmp_path, tokens):
    """Defect 1 (and 9): the comment is recorded and acknowledged, the experiment workflow is
    dispatched with the run's own token, and the dispatched run retries on Modal (stand-in), with
    BOT_TOKEN for its writes, and answers with a comment. Two comments, one surviving run: both done."""
    world, server = github_world, github_world.server
    assert world.run(2).exit_code == 0  # a night's PRs, trained here (the toy settings)
    number = discarded_prs(world)[0]
    use_shipped_settings(world)
    server.permissions["writer"] = "write"
    shims = ar.bot_shims(tmp_path / "shims")
    standin = tmp_path / "modal-standin"
    standin.mkdir()
    extra = {"MODAL_STANDIN_ROOT": str(standin), "AUTORESEARCH_WRITES_PER_MINUTE": "0"}  # no pacing in a test

    started = time.monotonic()
    events = [comment_event(world, number, "/autoresearch retry", "writer") for _ in range(2)]
    for event in events:
        out = check(run_workflow(world, tmp_path, "commands.yml", "issue_comment", event, shims, extra_env=extra))
        assert "queued: retry" in out and "dispatched: autoresearch.yml" in out, out
        assert server.reactions[event["comment"]["id"]] == ["eyes"]
        replies = [c["body"] for c in server.comments[number] if f"queued-{event['comment']['id']}" in c["body"]]
        assert len(replies) == 1
    assert [d["workflow"] for d in server.dispatches] == ["autoresearch.yml"] * 2
    assert all(d["inputs"] == {"mode": "commands"} for d in server.dispatches)
    dispatch_auth = [t for m, p, t in tokens if p.endswith("/dispatches")]
    assert dispatch_auth == [JOB_TOKEN] * 2  # the one event GITHUB_TOKEN may cause that starts a run

    # The two dispatched runs share a group: the first may be cancelled while pending. One runs.
    dispatch = server.dispatches[-1]
    before = len(tokens)
    secrets = {"MODAL_TOKEN_ID": "ak-standin", "MODAL_TOKEN_SECRET": "as-standin", "BOT_TOKEN": APP_TOKEN}
    out = check(run_workflow(world, tmp_path, "autoresearch.yml", "workflow_dispatch", {"inputs": dispatch["inputs"]},
                             shims, inputs=dispatch["inputs"], secrets=secrets, extra_env=extra))
    elapsed = time.monotonic() - started
    assert "deploy -m gpu_jobs.modal_app" in (standin / "modal-cli.log").read_text()
    assert "run_experiment" in (standin / "lookups.log").read_text(), "the retry did not go to Modal"
    assert out.count("Queued command done: retry") == 2, out
    for event in events:
        assert server.reactions[event["comment"]["id"]] == ["eyes", "rocket"]
        results = [c["body"] for c in server.comments[number] if f"result-{event['comment']['id']}" in c["body"]]
        assert len(results) == 1 and "`/autoresearch retry` (asked by @writer) ran as experiment" in results[0], results
    rows = [json.loads(x) for x in world.bare_file(f"{TRACKING}-ledger", "experiments.jsonl").splitlines()]
    assert [r["kind"] for r in rows].count("retry") == 2
    writes = [t for m, p, t in tokens[before:] if m != "GET"]
    assert writes and set(writes) == {APP_TOKEN}, set(writes)  # what it writes can start CI
    budget = 300  # the shipped budget_seconds
    assert elapsed < budget + 600, elapsed


def test_without_a_bot_token_the_runs_own_token_is_used(tmp_path):
    """Defect 9's other half: the workflows work with either token."""
    for secrets, expected in (({}, JOB_TOKEN), ({"BOT_TOKEN": APP_TOKEN}, APP_TOKEN)):
        (_, job, context), = ar.jobs_for(ar.WORKFLOWS / "autoresearch.yml", "schedule", {}, secrets=secrets,
                                         token=JOB_TOKEN)
        step = next(s for s in job["steps"] if s.get("name") == "Experiments")
        assert ar.substitute(step["env"]["GITHUB_TOKEN"], context) == expected


def test_a_night_through_the_reusable_workflow_writes_the_job_summary(github_world, tmp_path, tokens):
    """The nightly path: autoresearch.yml → autoresearch-reusable.yml (mode night) on the Modal
    stand-in; the bot's writes carry BOT_TOKEN and the job summary has the night's table."""
    world = github_world
    use_shipped_settings(world)
    shims = ar.bot_shims(tmp_path / "shims")
    standin = tmp_path / "modal-standin"
    standin.mkdir()
    # The world's train.py is a toy with no prepare.py: trust mode for it, the rest as shipped.
    extra = {"MODAL_STANDIN_ROOT": str(standin), "AUTORESEARCH_WRITES_PER_MINUTE": "0", "AUTORESEARCH_HARNESS": ""}
    secrets = {"MODAL_TOKEN_ID": "ak-standin", "MODAL_TOKEN_SECRET": "as-standin", "BOT_TOKEN": APP_TOKEN}
    inputs = {"mode": "night", "hours": 0.002, "budget": 300}  # ~7 s: the baseline, maybe an experiment
    out = check(run_workflow(world, tmp_path, "autoresearch.yml", "workflow_dispatch", {"inputs": inputs}, shims,
                             inputs=inputs, secrets=secrets, extra_env=extra))
    assert "nothing queued" in out
    summary = (tmp_path / "runner-temp" / "step-summary.md").read_text()
    assert summary.startswith("## autoresearch: ") and "| # | kind | status | val_bpb |" in summary, summary
    assert "**Baseline: val_bpb 3." in summary or "Best delta" in summary or "No improvement" in summary, summary
    assert "https://github.example/octo/night/blob/autoresearch/default-ledger/results.tsv" in summary
    writes = {t for m, p, t in tokens if m != "GET"}
    assert writes == {APP_TOKEN}, writes
    assert any(m == "POST" and p.endswith("/pulls") for m, p, _ in tokens)  # a PR CI will run on
