"""The `bot` command. The only module that reads the environment and builds real clients."""

import os
import sys

import click

from bot import __version__
from bot.cli_common import friendly_errors, ledger_dir, open_repo
from bot.cli_output import ProgressBar, printer
from bot.errors import BotError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="autoresearch-bot")
def cli():
    """autoresearch-bot: propose one change to train.py, train for a fixed budget, keep or discard.

    \b
    Examples:
      bot run --local --iterations 3 --budget 15   # three CPU experiments, 15 s each
      bot status                                   # the ledger so far
    """


@cli.command()
@click.option("--local", "local", is_flag=True, help="Train on this machine (its GPU, else the CPU).")
@click.option("--iterations", type=click.IntRange(min=1), help="Stop after N experiments.")
@click.option("--parallel", type=click.IntRange(min=1), help="Experiments trained at once, from the same head (default: parallel, 1).")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), help="Stop starting experiments after H hours.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), help="Training seconds per experiment (default: budget_seconds, 300).")
@click.option("--tag", help="Run name: branches autoresearch/<tag>, autoresearch/<tag>-exp/NNNN.")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository to improve.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Settings file (default: <repo>/autoresearch.yaml).")
@click.option("--github", "github_repo", metavar="OWNER/NAME", help="GitHub mode on this repository (default: GITHUB_REPOSITORY, else the origin remote, when GITHUB_TOKEN is set).")
@click.option("--no-github", is_flag=True, help="Local mode even when GITHUB_TOKEN is set.")
@click.option("--kept-only", is_flag=True, help="GitHub mode: open PRs for kept changes only; others go to the ledger and the report PR.")
@click.option("--writes-per-minute", type=click.IntRange(min=0), default=8, show_default=True,
              envvar="AUTORESEARCH_WRITES_PER_MINUTE", help="Pace GitHub writes (GitHub allows ~500/h; 0: no pacing).")
@click.option("--bot-login", default="github-actions[bot]", show_default=True, envvar="AUTORESEARCH_BOT_LOGIN",
              help="The login the bot's PRs are opened by (a GitHub App's is <app>[bot]); markers are trusted only on its PRs.")
@click.option("--review-bound", type=click.FloatRange(min=0, min_open=True), help="GitHub mode: a keep better by more than this fraction (0.05 = 5%) is held for review, not merged.")
@click.option("--delete-closed-branches", is_flag=True, help="GitHub mode: delete the branches of discarded/crashed PRs (GitHub keeps their commits under the PR).")
@click.option("--no-isolation", is_flag=True, help="Run experiments without the sandbox (GitHub mode refuses to otherwise when none can start).")
@friendly_errors
def run(local, iterations, parallel, hours, budget, tag, repo, config_path, github_repo, no_github, kept_only, writes_per_minute, bot_login,
        review_bound, delete_closed_branches, no_isolation):
    """Measure a baseline, then run experiments until a limit is reached.

    Each experiment changes one thing in the editable files, trains for the budget, and is
    kept (the tracking branch moves to it) or discarded (its branch stays). Rerunning
    resumes from the ledger in .autoresearch/<tag>/. Ctrl-C stops cleanly.

    \b
    Examples:
      bot run --local --iterations 3 --budget 15   # quick CPU demo, about two minutes
      bot run --local --hours 8                    # a night on this machine's GPU
      bot run --local --tag lr-sweep --iterations 20
      bot run --local --iterations 3               # in a copy of examples/speed: any metric, a gate
      bot run --local --parallel 4 --hours 8       # four experiments at once (four GPUs, or Modal)
      GITHUB_TOKEN=... bot run --local --github me/nanogpt --iterations 4   # a PR per experiment
    """
    from bot.ledger import Ledger
    from bot.loop import Interrupted, ResearchLoop

    git, config = open_repo(repo, config_path, budget_seconds=budget, tag=tag,
                        runner="local" if local else None, parallel=parallel)
    from bot.runlock import RunLock

    # held until this command returns or the process ends (the kernel drops it on any exit)
    lock = RunLock(ledger_dir(git.root, config), config.tag).acquire("bot run")
    ledger = None
    try:
        proposer = _proposer(config, git, warn=lambda line: click.echo(f"warning: {line}", err=True))
        from bot.cli_runner import build_runner

        bar = ProgressBar()
        from bot.github import github_applies

        # Before any GitHub request: GitHub mode does not run unsandboxed experiments without consent,
        # and a Modal runner without a token fails at once.
        runner = build_runner(config, bar.on_line, git, github=not no_github and github_applies(git, github_repo),
                              no_isolation=no_isolation, warn=lambda line: click.echo(line, err=True),
                              state_dir=ledger_dir(git.root, config))
        state_dir = ledger_dir(git.root, config)
        ledger = Ledger(state_dir, config.metric)
        publisher = None
        if not no_github:
            from bot.github import github_mode

            ledger, publisher = github_mode(git, config, github_repo, kept_only, writes_per_minute, ledger,
                                             printer(bar, config.metric), review_bound=review_bound,
                                             delete_closed_branches=delete_closed_branches) or (ledger, None)
        if publisher and config.parallel == 1:  # PRs, labels and merges are written while the next experiment
            # trains (--parallel writes them itself, on this thread, while each batch trains)
            from bot.github import BackgroundPublisher

            publisher = BackgroundPublisher(publisher)
        loop = ResearchLoop(config, git, runner, proposer,
                            ledger, events=printer(bar, config.metric), publisher=publisher)
        click.echo(f"autoresearch-bot {__version__}: {git.root}, tag {config.tag}, budget {config.budget_seconds:g} s, "
                   f"{runner_words(runner)}" + (f" ({config.parallel} experiments at once)" if config.parallel > 1 else "")
                   + f", isolation {runner.isolation}, proposer {proposer.name}"
                   + (f" ({config.model})" if proposer.name == "anthropic" else ""))
        click.echo(f"Optimizing {config.metric} ({config.direction})"
                   + (f"; gate: `{config.gate}`" if config.gate else ""))
        if publisher:  # comment commands queued with `bot command --queue` go first
            from bot.github import CommandHandler

            for outcome, detail in CommandHandler(publisher.gh, git, config, ledger, publisher, loop, bot_login).drain():
                click.echo(f"Queued command {outcome}: {detail}")
        previous = _stop_on_signals()
        try:
            if config.parallel > 1:
                from bot.parallel import BatchLoop

                BatchLoop(loop, config.parallel).run(iterations=iterations, hours=hours)
            else:
                loop.run(iterations=iterations, hours=hours)
        except (Interrupted, KeyboardInterrupt) as exc:
            bar.clear()
            what = str(exc) if isinstance(exc, Interrupted) else "stopped between steps"
            click.echo(f"\nInterrupted: {what}. Nothing half-written; rerun the same command to resume.", err=True)
            sys.exit(130)
        finally:
            _restore_signals(previous)
        click.echo("")
        click.echo(_status_text(ledger, config))
        click.echo(f"\nResults: {ledger.tsv_path} (every fact: {ledger.jsonl_path.name}); "
                   f"best version: `git checkout {config.branches['tracking']}`")
    finally:
        if ledger is not None and hasattr(ledger, "release"):  # GitHub mode's lease on the ledger branch
            ledger.release()
        lock.release()


def runner_words(runner):
    """'local runner' or 'Modal runner (H100!)' for the run's first line."""
    if runner.name == "modal":
        return f"Modal runner ({getattr(runner, 'gpu', '?')})"
    return f"{runner.name} runner"


def _stop_on_signals():
    """SIGTERM (a CI cancel, `kill`) and SIGHUP (a closed terminal) stop a run as Ctrl-C does: the
    training is killed and nothing half-written is recorded."""
    import signal

    def interrupt(number, frame):
        raise KeyboardInterrupt(signal.Signals(number).name)

    previous = {}
    for number in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[number] = signal.signal(number, interrupt)
        except ValueError:  # not the main thread (the CLI called from a library): leave signals alone
            pass
    return previous


def _restore_signals(previous):
    import signal

    for number, handler in previous.items():
        signal.signal(number, handler)


def _proposer(config, git, warn):
    """The configured proposer; for `anthropic`, a real client from ANTHROPIC_API_KEY (and the SDK's
    ANTHROPIC_BASE_URL), checked before any compute is spent."""
    from bot.proposers.offline import OfflineProposer

    offline = OfflineProposer(config.seed)
    if config.proposer == "offline":
        return offline
    key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        raise BotError("`proposer: anthropic` needs ANTHROPIC_API_KEY in the environment (create a key at "
                       "console.anthropic.com → API keys; in GitHub Actions, a repository secret), "
                       "or set `proposer: offline`")
    try:
        import anthropic
    except ImportError:
        raise BotError("`proposer: anthropic` needs the anthropic package: pip install anthropic") from None
    from bot.proposers.anthropic import AnthropicProposer

    program = git.root / config.program
    if not program.is_file():
        warn(f"{config.program} not found: the proposer works from the code and the history alone "
             "(write research instructions there, or set `program:` in autoresearch.yaml)")
    client = anthropic.Anthropic(api_key=key, max_retries=0)  # retries are the proposer's, bounded
    return AnthropicProposer(client, offline, model=config.model, editable=config.editable,
                             program_text=program.read_text(encoding="utf-8") if program.is_file() else "",
                             metric=config.metric, direction=config.direction, api_attempts=config.api_attempts,
                             max_wait_seconds=config.api_max_wait_seconds,
                             timeout_seconds=config.api_timeout_seconds, warn=warn)


def _status_text(ledger, config):
    from bot.progress import report_stats, stats_line
    from bot.report import isolation_line, spending_line, status_table

    records = ledger.read()
    text = status_table(records, config.metric, config.direction)
    if not records:
        return text
    spending = spending_line(records)
    return (text + "\n" + stats_line(report_stats(records, config.direction)) + "\n" + isolation_line(records)
            + (f"\n{spending}" if spending else ""))


@cli.command()
@click.option("--tag", help="Run name (default: tag in autoresearch.yaml, else `default`).")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Settings file.")
@friendly_errors
def status(tag, repo, config_path):
    """Print the ledger as a table, with the best result and kept/discarded/crashed counts.

    \b
    Examples:
      bot status
      bot status --tag lr-sweep
    """
    from bot.ledger import Ledger

    git, config = open_repo(repo, config_path, tag=tag)
    ledger = Ledger(ledger_dir(git.root, config), config.metric)
    click.echo(_status_text(ledger, config))
    for warning in ledger.warnings:
        click.echo(f"warning: {warning}", err=True)


@cli.command()
@click.argument("experiment_id", type=int)
@click.option("--runs", default=2, show_default=True, type=click.IntRange(min=1), help="Fresh seeds to run.")
@click.option("--local", "local", is_flag=True, help="Train on this machine (its GPU, else the CPU).")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), help="Training seconds (must match the experiment's).")
@click.option("--tag", help="Run name (default: tag in autoresearch.yaml, else `default`).")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Settings file.")
@click.option("--no-isolation", is_flag=True, help="Run without the sandbox.")
@friendly_errors
def reproduce(experiment_id, runs, local, budget, tag, repo, config_path, no_isolation):
    """Re-run experiment EXPERIMENT_ID's exact commit with fresh seeds and pool the samples.

    The pooled mean is compared with the experiment's parent under the noise-aware rule and
    recorded as a `reproduced` ledger row; no branch moves. Reproducing the tracking head
    adds its runs to "best before".

    \b
    Examples:
      bot reproduce 7 --local --budget 15            # two more seeds for experiment 0007
      bot reproduce 0 --local --budget 15 --runs 4   # tighten the baseline's noise floor
    """
    from bot.ledger import Ledger
    from bot.loop import ResearchLoop
    from bot.reproduce import reproduce as run_reproduce

    git, config = open_repo(repo, config_path, budget_seconds=budget, tag=tag, runner="local" if local else None)
    from bot.cli_runner import build_runner

    bar = ProgressBar()
    ledger = Ledger(ledger_dir(git.root, config), config.metric)
    runner = build_runner(config, bar.on_line, git, no_isolation=no_isolation,
                          warn=lambda line: click.echo(line, err=True), state_dir=ledger_dir(git.root, config))
    loop = ResearchLoop(config, git, runner, None, ledger,
                        events=printer(bar, config.metric))
    row = run_reproduce(loop, experiment_id, runs)
    click.echo(f"{int(row['id']):04d}: {row['reason']}")


@cli.command()
@click.option("--out", type=click.Path(file_okay=False), help="Folder for report.md and progress.png (default: the ledger's).")
@click.option("--no-plot", is_flag=True, help="Write only the markdown (no matplotlib needed).")
@click.option("--tag", help="Run name (default: tag in autoresearch.yaml, else `default`).")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Settings file.")
@friendly_errors
def report(out, no_plot, tag, repo, config_path):
    """Write progress.png (every experiment a point, kept ones labelled, the head as a step
    line) and report.md (headline numbers and a table), and print the markdown.

    \b
    Examples:
      bot report                       # into .autoresearch/<tag>/
      bot report --out docs/ --no-plot
    """
    from pathlib import Path

    from bot.ledger import Ledger
    from bot.progress import markdown_report, progress_points

    git, config = open_repo(repo, config_path, tag=tag)
    ledger = Ledger(ledger_dir(git.root, config), config.metric)
    records = ledger.read()
    if not records:
        raise BotError("the ledger is empty: run `bot run --local` first")
    folder = Path(out) if out else ledger.directory
    folder.mkdir(parents=True, exist_ok=True)
    image = None
    import importlib.util

    if not no_plot and importlib.util.find_spec("matplotlib") is None:  # the markdown needs no extra
        click.echo("note: progress.png needs matplotlib (pip install 'autoresearch-bot[report]'); "
                   "writing report.md only", err=True)
        no_plot = True
    if not no_plot:
        from bot.plot import write_progress_png

        write_progress_png(progress_points(records), folder / "progress.png", config.metric,
                           f"autoresearch {config.tag}")
        image = "progress.png"
    text = markdown_report(records, config.metric, config.direction, image=image)
    (folder / "report.md").write_text(text, encoding="utf-8")
    click.echo(text)
    click.echo(f"Wrote {folder / 'report.md'}" + (f" and {folder / 'progress.png'}" if image else ""))


from bot.github import register as register_github  # noqa: E402  (GitHub-mode commands, registered on `cli`)

register_github(cli)

from bot.cli_init import init  # noqa: E402

cli.add_command(init)


def main():
    cli(prog_name="bot")
