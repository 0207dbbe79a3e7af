"""The CLI's runner: where experiments train, chosen by `runner:` (or `--local`) and checked
before any compute. Part of the CLI layer: it reads the environment (the Modal token) and builds
the real Modal client, so nothing below the CLI does.
"""

from pathlib import Path

from bot.errors import BotError


def build_runner(config, on_line, git, github=False, no_isolation=False, warn=None, state_dir=None):
    """The configured runner. Local: this machine, in the sandbox (see `checked_runner`). Modal:
    the token and the service are checked first (bot.runners.modal.preflight), within seconds, so
    a missing token costs one line and no waiting."""
    if config.runner == "local":
        from bot.runners.local import checked_runner

        return checked_runner(config, on_line, github=github, no_isolation=no_isolation, warn=warn)
    try:
        from bot.runners.modal import modal_runner
    except ImportError as exc:  # modal is a core dependency; a broken install says so
        raise BotError(f"the Modal runner needs the modal package ({exc}): pip install 'modal>=1.6', "
                       "or pass --local") from None
    head = git.branch_sha(config.branches["tracking"]) or git.resolve("HEAD")
    harness = {path: git.read_file(head, path) for path in config.harness} if head else {}
    runner = modal_runner(config, {path: text.encode("utf-8") for path, text in harness.items() if text is not None},
                          on_line=on_line, state_path=Path(state_dir or git.root / ".autoresearch" / config.tag)
                          / "modal-calls.json", isolation="none" if no_isolation else config.isolation)
    if runner.isolation != "bwrap" and warn:
        warn("warning: bubblewrap cannot start in Modal's containers, so each experiment trains in a container of "
             "its own, unsandboxed: the training and the evaluation share it, so the metric is only as safe as "
             "trust mode (every ledger row records isolation: container)")
    return runner
