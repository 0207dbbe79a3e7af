"""The GitHub-mode parts of the `bot` command: reading the token and repository from the
environment, building the PyGithub client, and `bot command` / `bot ledger rebuild`."""

import os
import uuid

import click

from bot.cli_common import friendly_errors, ledger_dir, open_repo
from bot.cli_output import ProgressBar
from bot.cli_output import printer as event_printer
from bot.errors import BotError
from bot.github.lease import lease_ttl


def _github_target(git, explicit):
    """OWNER/NAME from --github, GITHUB_REPOSITORY, or a github.com origin remote (else None)."""
    import re

    if explicit or os.environ.get("GITHUB_REPOSITORY"):
        return explicit or os.environ["GITHUB_REPOSITORY"]
    try:
        url = git.git("remote", "get-url", "origin")
    except BotError:
        return None
    match = re.search(r"github\.com[:/]([^/]+/[^/]+?)(\.git)?$", url)
    return match.group(1) if match else None


def github_applies(git, github_repo):
    """Whether `bot run` would work through GitHub (a target and a token): decided before any request."""
    return bool(_github_target(git, github_repo) and os.environ.get("GITHUB_TOKEN"))


def _push_env(token, server_url):
    """Git sees the token through GIT_CONFIG_* variables: never in argv, a URL or a file."""
    import base64

    secret = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{server_url.rstrip('/')}/.extraheader",
            "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {secret}", "GIT_TERMINAL_PROMPT": "0"}


def github_mode(git, config, github_repo, kept_only, writes_per_minute, ledger, events, reconcile=True,
                review_bound=None, delete_closed_branches=False):
    """(BranchLedger, Publisher) when GitHub mode applies, else None."""
    target = _github_target(git, github_repo)
    token = os.environ.get("GITHUB_TOKEN")
    if target and not token:
        if github_repo:
            raise BotError("--github needs a token: set GITHUB_TOKEN (see README, \"Which token\")")
        return None
    if not target:
        return None
    from bot.github.client import GitHub, connect
    from bot.github.ledger_branch import BranchLedger
    from bot.github.publisher import Publisher

    api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
    push_env = _push_env(token, os.environ.get("GITHUB_SERVER_URL", "https://github.com"))
    gh = GitHub(connect(token, target, api, writes_per_minute=writes_per_minute))
    branch_ledger = BranchLedger(ledger.directory, config.metric, git, config.branches["ledger"], push_env=push_env)
    publisher = Publisher(gh, git, config, push_env=push_env, kept_only=kept_only, events=events,
                          review_bound=review_bound, delete_closed_branches=delete_closed_branches)
    click.echo(f"GitHub mode: {target}; tracking {config.branches['tracking']}, ledger {config.branches['ledger']}")
    if reconcile:  # `bot run`: one per tag, across machines, before anything is written
        note = branch_ledger.claim(uuid.uuid4().hex, _holder(), lease_ttl(config))
        if note:
            events("warning", message=note)
    publisher.prepare()
    records = branch_ledger.pull()
    if reconcile:
        publisher.reconcile(records)
    return branch_ledger, publisher


def _holder():
    """Who holds the lease, in words another run's error can show."""
    import socket

    words = f"{socket.gethostname()} pid {os.getpid()}"
    run_id = os.environ.get("GITHUB_RUN_ID")
    if run_id:
        words += (f", Actions run {os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/"
                  f"{os.environ.get('GITHUB_REPOSITORY', '?')}/actions/runs/{run_id}")
    return words


@click.command()
@click.option("--event", "event_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The issue_comment event JSON (in Actions: $GITHUB_EVENT_PATH).")
@click.option("--local", "local", is_flag=True, help="Re-evaluate on this machine (its GPU, else the CPU).")
@click.option("--github", "github_repo", metavar="OWNER/NAME", help="Repository (default: GITHUB_REPOSITORY).")
@click.option("--bot-login", default="github-actions[bot]", show_default=True, envvar="AUTORESEARCH_BOT_LOGIN",
              help="The bot's own login (its comments are ignored; markers are trusted only on its PRs).")
@click.option("--writes-per-minute", type=click.IntRange(min=0), default=8, show_default=True,
              envvar="AUTORESEARCH_WRITES_PER_MINUTE", show_envvar=True, help="Pace GitHub writes (0: no pacing).")
@click.option("--queue", is_flag=True, help="Record retry/revert on the ledger branch for the next `bot run` instead of running it now.")
@click.option("--dispatch", "dispatch", metavar="WORKFLOW", help="With --queue: then start this workflow file (workflow_dispatch, input mode=commands), which runs `bot drain`.")
@click.option("--tag", help="Run name (default: tag in autoresearch.yaml).")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository checkout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Settings file.")
@click.option("--no-isolation", is_flag=True, help="Run a retry without the sandbox when none can start here.")
@friendly_errors
def command(event_path, local, github_repo, bot_login, writes_per_minute, queue, dispatch, tag, repo, config_path,
            no_isolation):
    """Act on a `/autoresearch ...` comment on an experiment PR (needs GITHUB_TOKEN).

    Commands: retry, revert, reject <why>, try <idea>, help. Only users with write
    permission may run them (help excepted); others get a reply saying why.

    \b
    Examples:
      bot command --event "$GITHUB_EVENT_PATH" --local
      bot command --event comment.json --local --github me/nanogpt
      bot command --event "$GITHUB_EVENT_PATH" --queue   # quick: the next `bot run` does it
      bot command --event "$GITHUB_EVENT_PATH" --queue --dispatch autoresearch.yml   # ... started now
    """
    import json

    from bot.github.command_handler import CommandHandler
    from bot.ledger import Ledger
    from bot.loop import ResearchLoop
    from bot.proposers.offline import OfflineProposer

    try:
        event = json.loads(open(event_path, encoding="utf-8").read())
    except (OSError, ValueError) as exc:
        raise BotError(f"cannot read the event file {event_path}: {exc}; pass the issue_comment event JSON") from None
    from bot.github.commands import event_problem, ignore_reason

    problem = event_problem(event)
    if problem:
        raise BotError(f"{event_path}: {problem}")
    reason = ignore_reason(event, bot_login)
    if reason:  # most comments: answer before touching GitHub or git at all
        click.echo(f"ignored: {reason}")
        return
    git, config = open_repo(repo, config_path, tag=tag, runner="local" if local else None)
    bar = ProgressBar()
    printer = event_printer(bar, config.metric)
    if queue:  # only records the command: no GPU and no Modal token needed
        from bot.runners import RecordOnlyRunner

        runner = RecordOnlyRunner()
    else:  # a retry runs now: the runner (and, locally, the sandbox beside the token) is settled before any GitHub request
        from bot.cli_runner import build_runner

        runner = build_runner(config, bar.on_line, git, github=True, no_isolation=no_isolation,
                              state_dir=ledger_dir(git.root, config))
    # No reconcile here: a `bot run` may be mid-experiment in another job; its PRs are its own.
    mode = github_mode(git, config, github_repo, False, writes_per_minute,
                       Ledger(ledger_dir(git.root, config), config.metric), printer, reconcile=False)
    if mode is None:
        raise BotError("`bot command` needs GitHub: set GITHUB_TOKEN and GITHUB_REPOSITORY (or --github OWNER/NAME)")
    ledger, publisher = mode
    loop = ResearchLoop(config, git, runner, OfflineProposer(config.seed), ledger,
                        events=printer, publisher=publisher)
    handler = CommandHandler(publisher.gh, git, config, ledger, publisher, loop, bot_login)
    handler.dispatching = bool(queue and dispatch)
    outcome, detail = handler.handle(event, queue=queue)
    click.echo(f"{outcome}: {detail}")
    if outcome == "queued" and dispatch:
        # workflow_dispatch is the one event a run's GITHUB_TOKEN causes that starts a workflow, so
        # the request is done within minutes instead of at the next scheduled night.
        ref = (event.get("repository") or {}).get("default_branch") or os.environ.get("GITHUB_REF_NAME") or "main"
        publisher.gh.dispatch_workflow(dispatch, ref, {"mode": "commands"})
        click.echo(f"dispatched: {dispatch} on {ref} (mode commands)")


@click.group()
def ledger():
    """The ledger (experiments.jsonl, results.tsv).

    \b
    Examples:
      bot ledger rebuild                 # recover rows from the PR markers on GitHub
    """


@ledger.command("rebuild")
@click.option("--github", "github_repo", metavar="OWNER/NAME", help="Repository (default: GITHUB_REPOSITORY).")
@click.option("--tag", help="Run name (default: tag in autoresearch.yaml).")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository checkout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Settings file.")
@friendly_errors
def ledger_rebuild(github_repo, tag, repo, config_path):
    """Rebuild the ledger from the hidden markers in the bot's PRs and push it to the ledger branch.

    Use it when the ledger branch was deleted or damaged. Rows found only on the branch are kept.

    \b
    Examples:
      bot ledger rebuild
      bot ledger rebuild --github me/nanogpt --tag night1
    """
    from bot.github.rebuild import rebuild
    from bot.ledger import Ledger

    git, config = open_repo(repo, config_path, tag=tag)
    mode = github_mode(git, config, github_repo, False, 8, Ledger(ledger_dir(git.root, config), config.metric),
                        lambda kind, **facts: None, reconcile=False)
    if mode is None:
        raise BotError("`bot ledger rebuild` needs GitHub: set GITHUB_TOKEN and GITHUB_REPOSITORY (or --github)")
    branch_ledger, publisher = mode
    added = rebuild(publisher.gh, branch_ledger, config.branches["experiment"])
    click.echo(f"ledger rebuilt: {added} row(s) recovered from PR markers; {len(branch_ledger.read())} in all")


def register(group):
    from bot.github.cli_actions import drain, schedule, summary

    group.add_command(command)
    group.add_command(ledger)
    for extra in (drain, summary, schedule):
        group.add_command(extra)
