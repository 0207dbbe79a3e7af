"""GitHub mode: each experiment a pull request, winners merged by fast-forward, the ledger on a
branch, comment commands, and the Actions side. One face for the rest of the bot:

    client.py          GitHub (the only PyGithub user), connect, its errors
    publisher.py       experiment PRs, labels, merges, the report PR; reconcile after a kill
    publish_queue.py   the publisher's writes on a worker thread, off the GPU's critical path
    ledger_branch.py   the ledger mirrored on a branch with compare-and-swap pushes; the lease
    lease.py           one `bot run` per tag across machines (pure)
    command_handler.py `/autoresearch ...` comments: who may, what is trusted, what runs
    commands.py        parsing and the trust rules for comments and markers (pure)
    messages.py        PR, comment and report texts, hidden markers (pure)
    rebuild.py         the ledger recovered from PR markers
    schedule.py, summary_md.py   a cron line per repository; the job summary (pure)
    cli.py, cli_actions.py       the GitHub commands of the CLI layer

Outside this package, import from `bot.github` only.
"""

import importlib

# Lazy (PEP 562): `bot` commands that never touch GitHub do not pay for importing PyGithub.
_FACE = {
    "GitHub": "client", "GitHubError": "client", "ProtectedError": "client", "StaleError": "client",
    "connect": "client", "BranchLedger": "ledger_branch", "BackgroundPublisher": "publish_queue",
    "Publisher": "publisher", "CommandHandler": "command_handler", "github_applies": "cli",
    "github_mode": "cli", "register": "cli",
}
__all__ = sorted(_FACE)


def __getattr__(name):
    if name not in _FACE:
        raise AttributeError(f"module 'bot.github' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bot.github.{_FACE[name]}"), name)
