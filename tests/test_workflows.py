"""The shipped workflows' own `run:` lines with the shipped autoresearch.yaml (`runner: modal`),
run by bash as an Actions runner would (env from the step, GITHUB_EVENT_PATH), against the
loopback GitHub: no test-only variant with --local added."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import actions_runner as ar
from conftest import git
from test_github_commands import TRACKING, comment_event

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def step(workflow, name, event_name="schedule", inputs=None):
    """The step `name` of the job `workflow` runs for `event_name`, reusable workflows followed, and
    its expression context (tests/actions_runner.py)."""
    for _, job, context in ar.jobs_for(WORKFLOWS / workflow, event_name, {}, inputs):
        for candidate in job["steps"]:
            if candidate.get("name") == name:
                return candidate, context
    raise AssertionError(f"{workflow} runs no step named {name!r} on {event_name}")


def actions_env(world, tmp_path, found):
    """What the runner gives the step: its env block with expressions resolved the way an
    unconfigured repository resolves them (no secrets → empty strings; inputs → their defaults)."""
    step_env, context = found[0].get("env") or {}, dict(found[1], github=dict(found[1]["github"], token=world.env["GITHUB_TOKEN"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAL_", "AUTORESEARCH_"))}
    env.update(world.env, HOME=str(tmp_path / "home"), GITHUB_WORKSPACE=str(world.work), RUNNER_TEMP=str(tmp_path),
               PATH=f"{ar.bot_shims(tmp_path / 'shims')}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=str(ROOT))  # the `bot` shim runs this checkout's code
    (tmp_path / "home").mkdir(exist_ok=True)
    env.update({name: str(ar.substitute(value, context) or "") for name, value in step_env.items()})
    return env


def use_shipped_settings(world):
    shutil.copyfile(ROOT / "autoresearch.yaml", world.work / "autoresearch.yaml")
    git(world.work, "commit", "-qam", "the shipped settings")


def test_the_nightly_run_line_without_modal_secrets_fails_with_one_clear_line(github_world, tmp_path):
    experiments = step("autoresearch.yml", "Experiments")
    assert "--local" not in experiments[0]["run"]  # the shipped night trains on Modal
    use_shipped_settings(github_world)
    before = len(github_world.server.requests)
    deploy = step("autoresearch.yml", "Deploy the GPU job")
    done = subprocess.run(["bash", "-e", "-c", deploy[0]["run"]], cwd=github_world.work, capture_output=True,
                          text=True, timeout=60, env=actions_env(github_world, tmp_path, deploy))
    assert done.returncode == 0 and not done.stdout + done.stderr  # nothing to deploy with: the next step says why
    started = time.monotonic()
    done = subprocess.run(["bash", "-e", "-c", experiments[0]["run"]], cwd=github_world.work, capture_output=True,
                          text=True, timeout=120, env=actions_env(github_world, tmp_path, experiments))
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "modal token new" in lines[0] and "MODAL_TOKEN_ID" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and elapsed < 30
    assert len(github_world.server.requests) == before  # nothing written, nothing half-done
    assert github_world.server.pulls == {}


def test_the_install_step_of_the_night_needs_no_torch():
    install = step("autoresearch.yml", "Install")
    assert "torch" not in install[0]["run"] and "[train]" not in install[0]["run"]
    assert ar.substitute(install[0]["env"]["BOT_SOURCE"], install[1]) == "."  # the bot alone, no extras


def test_the_comment_run_line_queues_a_retry_under_the_shipped_settings(github_world, tmp_path):
    world = github_world
    assert world.run(2).exit_code == 0  # a night's PRs, trained here (the toy settings)
    server = world.server
    discarded = [n for n, p in server.pulls.items() if p["head"].startswith(f"{TRACKING}-exp/")
                 and "discarded" in server.issue_labels[n]]
    assert discarded
    use_shipped_settings(world)
    server.permissions["writer"] = "write"
    event = comment_event(world, discarded[0], "/autoresearch retry", "writer")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    jobs = ar.jobs_for(WORKFLOWS / "commands.yml", "issue_comment", event)
    (_, job, context), = jobs
    record = (next(s for s in job["steps"] if s.get("name") == "Record"), context)
    env = actions_env(world, tmp_path, record)
    env.update(GITHUB_EVENT_PATH=str(path), AUTORESEARCH_WRITES_PER_MINUTE="0")
    done = subprocess.run(["bash", "-e", "-c", record[0]["run"]], cwd=world.work, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "queued: retry" in done.stdout
    assert server.dispatches == [{"workflow": "autoresearch.yml", "ref": event["repository"]["default_branch"],
                                  "inputs": {"mode": "commands"}}]
    assert server.reactions[event["comment"]["id"]] == ["eyes"]
    replies = [c["body"] for c in server.comments[discarded[0]] if "Queued:" in c["body"]]
    assert len(replies) == 1 and "a run starts now" in replies[0] and "about 25 minutes" in replies[0]  # 300 s x 3 + 10


def test_the_nightly_run_line_with_modal_unreachable_fails_in_seconds(github_world, tmp_path):
    """A token, but Modal cannot be reached (a closed loopback port): one line naming the cause, within
    the preflight's bound, before anything is written to GitHub."""
    import socket

    experiments = step("autoresearch.yml", "Experiments")
    use_shipped_settings(github_world)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the with-block ends: nothing listens there
    env = actions_env(github_world, tmp_path, experiments)
    env.update(MODAL_TOKEN_ID="ak-test", MODAL_TOKEN_SECRET="as-test", MODAL_SERVER_URL=f"http://127.0.0.1:{port}")
    before = len(github_world.server.requests)
    started = time.monotonic()
    done = subprocess.run(["bash", "-e", "-c", experiments[0]["run"]], cwd=github_world.work, capture_output=True,
                          text=True, timeout=120, env=env)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Modal" in lines[0] and "--local" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and elapsed < 30, elapsed
    assert len(github_world.server.requests) == before and "ak-test" not in done.stdout + done.stderr
