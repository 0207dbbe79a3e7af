"""Parse the `---` summary block that train.py prints at the end of a run.

    ---
    val_bpb:          3.521234
    training_seconds: 15.0
    ...

Pure: no I/O. The last block wins (a script may print `---` earlier for its own reasons).
"""

import math
import re

SUMMARY_KEYS = (
    "val_bpb",
    "training_seconds",
    "total_seconds",
    "peak_vram_mb",
    "mfu_percent",
    "total_tokens_M",
    "num_steps",
    "num_params_M",
    "depth",
)

EXTRA_KEYS = ("device", "device_name", "peak_rss_mb", "compile_seconds")  # printed by train.py besides autoresearch's keys

_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\-]*):\s*(.*?)\s*$")
_PROGRESS = re.compile(r"\((\d{1,3}(?:\.\d+)?)%\)")


def _value(text):
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    return number


def parse_summary(output):
    """Return the last summary block in `output` as a dict, or None when there is none."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "---"]
    for start in reversed(starts):
        block = {}
        for line in lines[start + 1 :]:
            match = _LINE.match(line.strip())
            if not match:
                break
            block[match.group(1)] = _value(match.group(2))
        if block:
            return block
    return None


def metric_value(summary, metric):
    """The metric as a finite float, or None when it is missing or not a number."""
    if not summary or metric not in summary:
        return None
    value = summary[metric]
    if isinstance(value, str):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def progress_fraction(line):
    """0..1 from a progress line such as `step 00012 (23.4%) | loss: ...`, else None."""
    if not line.startswith("step"):
        return None
    match = _PROGRESS.search(line)
    if not match:
        return None
    return min(1.0, float(match.group(1)) / 100.0)


def clean_summary(summary, metric):
    """What of a summary printed by untrusted code is kept: the known keys (text cut to 64
    characters), the metric, and up to 40 other numbers with short names."""
    if not summary:
        return summary
    known = set(SUMMARY_KEYS) | set(EXTRA_KEYS) | {metric}
    kept = {}
    for key, value in summary.items():
        if isinstance(value, str):
            if key in known:
                kept[key] = value[:64]
        elif key in known or (len(kept) < 40 and len(key) <= 40):
            kept[key] = value
    return kept
