"""The parts of `bot` that GitHub Actions runs around a night: `bot drain` (the run a comment
command starts with workflow_dispatch), `bot summary` (the job summary) and `bot schedule` (a
cron line). Registered through bot.github.cli.register.
"""

import os
import time

import click

from bot.cli_common import friendly_errors, ledger_dir, open_repo
from bot.cli_output import ProgressBar
from bot.cli_output import printer as event_printer
from bot.errors import BotError

LEASE_HELD = "another `bot run` holds this tag's lease"  # bot.github.lease.conflict's words
LEASE_POLL_S = 30.0


def claim_waiting(claim, wait_s, sleep=time.sleep, clock=time.monotonic, say=click.echo):
    """`claim()` (GitHub mode, which takes the tag's lease), retried while another run holds the
    lease, for up to `wait_s` seconds: a command asked for during a night runs when the night ends
    instead of being dropped."""
    deadline = clock() + wait_s
    while True:
        try:
            return claim()
        except BotError as exc:
            if not str(exc).startswith(LEASE_HELD) or clock() >= deadline:
                raise
            say(f"waiting for the lease ({str(exc).split(': ', 1)[-1][:160]})")
            sleep(min(LEASE_POLL_S, max(0.0, deadline - clock())))


@click.command()
@click.option("--wait-minutes", type=click.FloatRange(min=0), default=0, show_default=True,
              help="While another run (a night) holds the tag's lease, wait this long for it.")
@click.option("--local", "local", is_flag=True, help="Train on this machine (its GPU, else the CPU).")
@click.option("--github", "github_repo", metavar="OWNER/NAME", help="Repository (default: GITHUB_REPOSITORY).")
@click.option("--writes-per-minute", type=click.IntRange(min=0), default=8, show_default=True,
              envvar="AUTORESEARCH_WRITES_PER_MINUTE", show_envvar=True, help="Pace GitHub writes (0: no pacing).")
@click.option("--tag", help="Run name (default: tag in autoresearch.yaml).")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository checkout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Settings file.")
@click.option("--no-isolation", is_flag=True, help="Run without the sandbox when none can start here.")
@click.option("--bot-login", default="github-actions[bot]", show_default=True, envvar="AUTORESEARCH_BOT_LOGIN",
              help="The login the bot's PRs are opened by (a GitHub App's is <app>[bot]); markers are trusted only on its PRs.")
@friendly_errors
def drain(wait_minutes, local, github_repo, writes_per_minute, tag, repo, config_path, no_isolation, bot_login):
    """Do the comment commands queued on the ledger branch, then stop (needs GITHUB_TOKEN).

    `bot command --queue` records a retry or revert and starts the experiment workflow, which
    runs this: each request is done once, oldest first, and answered with a comment.

    \b
    Examples:
      bot drain                       # on Modal, as the dispatched workflow does
      bot drain --wait-minutes 330    # wait out a night that holds the lease
      bot drain --local --github me/nanogpt
    """
    from bot.cli_runner import build_runner
    from bot.github.cli import github_mode
    from bot.github.command_handler import CommandHandler, pending_requests
    from bot.github.summary_md import result_text
    from bot.ledger import Ledger
    from bot.loop import ResearchLoop
    from bot.proposers.offline import OfflineProposer

    git, config = open_repo(repo, config_path, tag=tag, runner="local" if local else None)
    bar = ProgressBar()
    printer = event_printer(bar, config.metric)
    # Before any GitHub request, as `bot run`: a missing Modal token costs one line and no writes.
    runner = build_runner(config, bar.on_line, git, github=True, no_isolation=no_isolation,
                          warn=lambda line: click.echo(line, err=True), state_dir=ledger_dir(git.root, config))
    local_ledger = Ledger(ledger_dir(git.root, config), config.metric)
    mode = claim_waiting(lambda: github_mode(git, config, github_repo, False, writes_per_minute, local_ledger, printer),
                         wait_minutes * 60)
    if mode is None:
        raise BotError("`bot drain` needs GitHub: set GITHUB_TOKEN and GITHUB_REPOSITORY (or --github OWNER/NAME)")
    ledger, publisher = mode
    try:
        loop = ResearchLoop(config, git, runner, OfflineProposer(config.seed), ledger, events=printer, publisher=publisher)
        handler = CommandHandler(publisher.gh, git, config, ledger, publisher, loop, bot_login)
        pending = pending_requests(ledger.read())
        if not pending:
            click.echo("nothing queued")
        for request, (outcome, detail) in zip(pending, handler.drain()):
            click.echo(f"Queued command {outcome}: {detail}")
            if outcome == "done" and request["command"] == "retry":  # a revert answers itself; failures too
                row = next((r for r in ledger.read() if r.get("request") == request["id"]
                            and r.get("kind") == "retry"), None)
                handler.reply(request["pr"], request["comment_id"], "result",
                              result_text(request, row, config.metric, config.direction))
    finally:
        ledger.release()


@click.command()
@click.option("--since", required=True, metavar="ISO-TIME", help="When the night began (UTC, e.g. 2026-05-01T01:23:00Z).")
@click.option("--out", type=click.Path(dir_okay=False), help="Append here (default: $GITHUB_STEP_SUMMARY, else print).")
@click.option("--tag", help="Run name (default: tag in autoresearch.yaml).")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository checkout.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Settings file.")
@friendly_errors
def summary(since, out, tag, repo, config_path):
    """Write the night's table and best delta as markdown: the Actions job summary.

    \b
    Examples:
      bot summary --since "$STARTED"          # in Actions: appends to $GITHUB_STEP_SUMMARY
      bot summary --since 2026-05-01T00:00:00Z
    """
    from bot.github.summary_md import night_summary
    from bot.ledger import Ledger

    git, config = open_repo(repo, config_path, tag=tag)
    records = Ledger(ledger_dir(git.root, config), config.metric).read()
    links = {}
    repository = os.environ.get("GITHUB_REPOSITORY")
    if repository:  # a private repository's pages need its login: nothing is uploaded elsewhere
        base = f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com').rstrip('/')}/{repository}"
        links = {"full table (ledger branch)": f"{base}/blob/{config.branches['ledger']}/results.tsv",
                 "best version": f"{base}/tree/{config.branches['tracking']}",
                 "experiment PRs": f"{base}/pulls?q=label%3Aautoresearch"}
    text = night_summary(records, since, config.metric, config.direction, links)
    target = out or os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"summary written to {target}")
    else:
        click.echo(text, nl=False)


@click.command()
@click.option("--github", "github_repo", metavar="OWNER/NAME", help="Repository (default: GITHUB_REPOSITORY, else the origin remote).")
@click.option("--window-start", type=click.IntRange(0, 23), default=0, show_default=True, help="First hour (UTC) of the night window.")
@click.option("--window-hours", type=click.IntRange(1, 24), default=6, show_default=True, help="Hours in the window.")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository checkout.")
@friendly_errors
def schedule(github_repo, window_start, window_hours, repo):
    """Print a nightly cron line spread by the repository's name, and why.

    \b
    Examples:
      bot schedule                      # for the origin remote's repository
      bot schedule --github me/nanogpt --window-start 22 --window-hours 8
    """
    from bot.github.cli import _github_target
    from bot.github.schedule import schedule_text

    target = github_repo or os.environ.get("GITHUB_REPOSITORY")
    if not target:
        from bot.gitops import GitRepo

        try:
            target = _github_target(GitRepo(repo), None)
        except BotError:
            target = None
    if not target:
        raise BotError("no repository to spread by: pass --github OWNER/NAME (or run it in a clone of a GitHub repository)")
    click.echo(schedule_text(target, window_start, window_hours))
