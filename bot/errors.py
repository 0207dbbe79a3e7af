"""Errors the bot raises on purpose. Every message says what went wrong and how to fix it."""


class BotError(Exception):
    """Base class; the CLI prints the message without a traceback."""


class ConfigError(BotError):
    """autoresearch.yaml or an AUTORESEARCH_* variable is wrong."""


class RepoError(BotError):
    """The git repository is missing, dirty, or its branches are not what the bot expects."""


class ProposalError(BotError):
    """A proposed change is not allowed (wrong file, does not parse, duplicate, ...)."""


class LedgerError(BotError):
    """The ledger files cannot be read or written."""


class RunnerError(BotError):
    """The runner cannot start an experiment (not a failed experiment: that is a crash row)."""
