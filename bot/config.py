"""Settings: `autoresearch.yaml` in the repository, overridden by AUTORESEARCH_* variables.

`parse_config` is pure (a dict and an environment mapping in, a frozen Config out);
`load_config` reads the file. Tokens are never settings: they come only from the
environment, read by the CLI.
"""

import dataclasses
import difflib
import math
from pathlib import Path

from bot.errors import ConfigError
from bot.metric import check_metric, parse_metric_setting

CONFIG_FILE = "autoresearch.yaml"
RUNNERS = ("local", "modal")
PROPOSERS = ("offline", "anthropic")
DIRECTIONS = ("minimize", "maximize")
DECISION_RULES = ("noise-aware", "greedy")
ISOLATIONS = ("auto", "sandbox", "none")


@dataclasses.dataclass(frozen=True)
class Config:
    tag: str = "default"
    editable: tuple = ("train.py",)
    harness: tuple = ("prepare.py",)
    command: str = "python train.py"
    metric: str = "val_bpb"
    metric_regex: str = None  # None: read `metric` from the summary block (see bot/metric.py)
    direction: str = "minimize"
    gate: str = None  # a command that must pass (exit 0) before the metric counts
    gate_timeout_seconds: float = 300.0
    budget_seconds: float = 300.0
    budget_steps: int = None  # train this many counted steps instead of budget_seconds (CPU demos, benchmarks)
    timeout_seconds: float = None  # None: budget + max(60, budget), room for start-up and eval
    runner: str = "modal"
    gpu: str = "H100!"
    parallel: int = 1
    proposer: str = "offline"
    model: str = "claude-sonnet-5-5"  # proposer: anthropic (priced in bot/pricing.py)
    proposal_attempts: int = 3  # proposals refused in a row before the experiment is recorded `invalid`
    api_attempts: int = 3  # failed API calls before an experiment is proposed offline instead
    api_max_wait_seconds: float = 300.0  # longest total Retry-After / back-off wait per proposal
    api_timeout_seconds: float = 180.0  # one API call
    program: str = "program.md"
    data: str = "auto"
    decision_rule: str = "noise-aware"
    replicates: int = 3  # seeds the tracking head is measured with (baseline, and after each keep)
    noise_z: float = 2.0  # noise-aware: a keep must clear z standard errors of the delta
    min_delta: float = 0.0  # noise-aware: and at least this much
    max_samples: int = 3  # noise-aware: runs of one candidate at most (1 + confirmations)
    max_consecutive_crashes: int = 5
    max_usd: float = None
    seed: int = 42
    isolation: str = "auto"  # auto: the sandbox when it can start | sandbox: required | none
    startup_seconds: float = None  # None: 150 s on a GPU machine, 10 s + budget/10 on a CPU
    max_file_bytes: int = 1_000_000  # largest proposed file
    allowed_calls: tuple = ()  # process/network/dynamic-import names proposals may newly use
    readable: tuple = ()  # extra paths experiments may read (read-only), e.g. a fork's ~/.cache/autoresearch
    memory_preflight: bool = True  # before GPU time: estimate train.py's peak GPU memory on a CPU, refuse what won't fit

    @property
    def effective_timeout(self):
        if self.timeout_seconds is not None:
            return float(self.timeout_seconds)
        return float(self.budget_seconds) + max(60.0, float(self.budget_seconds))

    @property
    def branches(self):
        """Tracking, experiment prefix and ledger branch names (git cannot hold a/b and a/b/c)."""
        base = f"autoresearch/{self.tag}"
        return {"tracking": base, "experiment": f"{base}-exp/", "ledger": f"{base}-ledger"}


_FIELDS = {field.name: field for field in dataclasses.fields(Config)}
_TYPES = {
    "tag": str, "editable": tuple, "harness": tuple, "command": str, "metric": str,
    "direction": str, "budget_seconds": float, "timeout_seconds": float, "runner": str,
    "gpu": str, "parallel": int, "proposer": str, "model": str, "program": str, "data": str,
    "decision_rule": str, "replicates": int, "noise_z": float, "min_delta": float,
    "max_samples": int, "max_consecutive_crashes": int, "max_usd": float, "seed": int,
    "metric_regex": str, "gate": str, "gate_timeout_seconds": float,
    "isolation": str, "startup_seconds": float, "max_file_bytes": int, "allowed_calls": tuple, "readable": tuple,
    "proposal_attempts": int, "budget_steps": int, "api_attempts": int, "api_max_wait_seconds": float, "api_timeout_seconds": float,
    "memory_preflight": bool,
}
_CHOICES = {"runner": RUNNERS, "proposer": PROPOSERS, "direction": DIRECTIONS,
            "decision_rule": DECISION_RULES, "isolation": ISOLATIONS}
_OPTIONAL = {"timeout_seconds", "max_usd", "metric_regex", "gate", "startup_seconds", "budget_steps"}
_POSITIVE = {"budget_seconds", "timeout_seconds", "parallel", "max_consecutive_crashes",
             "gate_timeout_seconds", "replicates", "max_samples", "startup_seconds", "max_file_bytes",
             "proposal_attempts", "api_attempts", "api_timeout_seconds", "budget_steps"}
ENV_PREFIX = "AUTORESEARCH_"


def _coerce(key, value, origin):
    kind = _TYPES[key]
    if value is None:
        if key in _OPTIONAL:
            return None
        raise ConfigError(f"{origin}: `{key}` needs a value (delete the line to use the default)")
    if kind is bool:
        words = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in words:
            return words[str(value).strip().lower()]
        raise ConfigError(f"{origin}: `{key}` is {value!r}; use true or false")
    try:
        if kind is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            items = tuple(str(item).strip() for item in items if str(item).strip())
            if not items and key == "editable":
                raise ValueError("name at least one file experiments may change")
            return items
        if kind is str:
            if isinstance(value, (dict, list)):
                raise ValueError("expected text")
            return str(value)
        if isinstance(value, bool):
            raise ValueError("expected a number")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        if kind is int:
            if number != int(number):
                raise ValueError("expected a whole number")
            number = int(number)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: `{key}` is {value!r}, which is not a valid {kind.__name__} ({exc})")
    if number < 0 or (key in _POSITIVE and number <= 0):
        raise ConfigError(f"{origin}: `{key}` must be positive, got {value!r}")
    return number


def _unknown_key(key, origin):
    close = difflib.get_close_matches(key, list(_FIELDS), n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    raise ConfigError(
        f"{origin}: unknown setting `{key}`; {hint}valid settings: {', '.join(sorted(_FIELDS))}"
    )


def _check(values, origin):
    for key, choices in _CHOICES.items():
        if key in values and values[key] not in choices:
            raise ConfigError(f"{origin}: `{key}` is {values[key]!r}; choose one of {', '.join(choices)}")
    if "tag" in values and not _valid_tag(values["tag"]):
        raise ConfigError(f"{origin}: tag {values['tag']!r} must be letters, digits, '.', '_' or '-'")
    if "tag" in values and values["tag"].endswith(("-exp", "-ledger")):
        # autoresearch/x-exp would be both tag x's experiment folder and tag x-exp's tracking branch
        raise ConfigError(f"{origin}: tag {values['tag']!r} ends like the bot's own branch names "
                          "(`-exp`, `-ledger`); choose another, e.g. "
                          f"{values['tag'].rsplit('-', 1)[0]}-{values['tag'].rsplit('-', 1)[1]}2")


def parse_config(data, env=None, origin=CONFIG_FILE):
    """Build a Config from a mapping (the yaml) and AUTORESEARCH_* overrides in `env`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected `key: value` settings, got {type(data).__name__}")
    values = {}
    if "metric" in data:  # `metric: {name: ..., regex: ...}` is two settings in one
        data = dict(data)
        data["metric"], regex = parse_metric_setting(data["metric"], origin)
        if regex is not None:
            if data.get("metric_regex") not in (None, regex):
                raise ConfigError(f"{origin}: the metric regex is given twice (`metric.regex` and "
                                  "`metric_regex`); keep one")
            data["metric_regex"] = regex
    for key, value in data.items():
        if key not in _FIELDS:
            _unknown_key(str(key), origin)
        values[key] = _coerce(key, value, origin)
    # Only variables naming a setting are overrides: AUTORESEARCH_RESULT_PATH and friends
    # belong to the harness.
    for name, value in (env or {}).items():
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):].lower() in _FIELDS:
            key = name[len(ENV_PREFIX):].lower()
            values[key] = _coerce(key, value, f"environment variable {name}")
    _check(values, origin)
    config = Config(**values)
    from bot.proposal import is_editable  # pure; imported here, bot.proposal does not import config

    both = [path for path in config.harness if is_editable(path, config.editable)]
    if both:
        raise ConfigError(f"{origin}: {', '.join(both)} is both frozen (`harness`) and editable (`editable`): "
                          "an experiment could change how it is measured; remove it from one of the two")
    check_metric(config.metric, config.metric_regex, config.harness, origin)
    if config.gate is not None and not config.gate.strip():
        config = dataclasses.replace(config, gate=None)
    return config


def _valid_tag(tag):
    return bool(tag) and all(ch.isalnum() or ch in "._-" for ch in tag) and not tag.startswith(".")


def load_config(repo_root, env=None, path=None):
    """Read autoresearch.yaml from the repository (a missing file means all defaults)."""
    import yaml

    config_path = Path(path) if path else Path(repo_root) / CONFIG_FILE
    if not config_path.exists():
        if path:
            raise ConfigError(f"config file {config_path} does not exist: check the --config path")
        return parse_config({}, env, origin="defaults")
    try:
        data = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path} is not valid YAML: {exc}") from None
    return parse_config(data, env, origin=str(config_path.name))


def with_overrides(config, **overrides):
    """A copy with CLI overrides applied (None means: not given on the command line)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    for key, value in given.items():
        given[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
        _check({key: given[key]}, f"--{key.replace('_', '-')}")
    return dataclasses.replace(config, **given)
