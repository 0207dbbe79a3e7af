"""Which number an experiment is judged on. Pure: no I/O.

Two ways to name it in autoresearch.yaml:

    metric: val_bpb                                   # a key of the `---` summary block
    metric: {name: time_us, regex: 'time_us: ([0-9.]+)'}   # the first group of a regex

A regex is searched over the command's output (its last lines, as the job keeps them) and
the LAST match wins, like the summary block: a script may print progress lines first.
"""

import math
import re

from bot.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def parse_metric_setting(value, origin="autoresearch.yaml"):
    """`metric:` as written → (name, regex or None). A plain string is a summary key."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"name", "regex"})
        if unknown:
            raise ConfigError(f"{origin}: `metric` has unknown key(s) {', '.join(map(str, unknown))}; "
                              "write `metric: {name: time_us, regex: 'time_us: ([0-9.]+)'}`")
        name, regex = value.get("name"), value.get("regex")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{origin}: `metric` needs a `name` (it heads results.tsv's second column), "
                              "e.g. `metric: {name: time_us, regex: 'time_us: ([0-9.]+)'}`")
        if regex is not None and not isinstance(regex, str):
            raise ConfigError(f"{origin}: `metric.regex` must be text (quote it in YAML)")
        return name.strip(), (regex or None)
    if isinstance(value, str):
        return value, None
    raise ConfigError(f"{origin}: `metric` is {value!r}; write a summary key (`metric: val_bpb`) "
                      "or `metric: {name: ..., regex: '...'}`")


def check_metric(name, regex, harness, origin="autoresearch.yaml"):
    """Raise ConfigError for a metric the job could not read; return the compiled regex or None."""
    if not _NAME.match(name or ""):
        raise ConfigError(f"{origin}: metric name {name!r} must be a word such as `time_us` "
                          "(letters, digits, '_', '.', '-'); it names results.tsv's second column")
    if not regex:
        return None
    try:
        compiled = re.compile(regex, re.MULTILINE)
    except re.error as exc:
        raise ConfigError(f"{origin}: metric regex {regex!r} does not compile: {exc}") from None
    if compiled.groups != 1:
        raise ConfigError(f"{origin}: metric regex {regex!r} has {compiled.groups} groups; it needs exactly "
                          "one, around the number, e.g. 'time_us: ([0-9.]+)'")
    if name == "val_bpb" and harness:
        raise ConfigError(f"{origin}: val_bpb is measured by the frozen harness ({', '.join(harness)}), "
                          "not read from the output: drop the metric regex, or set `harness: []` "
                          "to trust the printed value")
    return compiled


def regex_value(output, regex):
    """The number in the regex's group in its last match over `output`, or None.

    A last match whose group is not a finite number gives None rather than an earlier
    match: the final report is the one that counts.
    """
    matches = list(re.finditer(regex, output, re.MULTILINE))
    if not matches:
        return None
    try:
        value = float(matches[-1].group(1))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
