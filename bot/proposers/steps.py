"""The offline proposer's steps: which values a constant may move to, and how finely. Pure.

Every constant has a kind that says how it moves: a switch is toggled, an integer steps by
±1, ±25 % and ×2, a learning-rate-like scale by ×1.5 and ×3, a fraction by ±0.1, a beta by
halving or doubling its distance to 1. Once those coarse steps are tried, finer ones halve the
gap between the value and a tried neighbour until it is below the resolution: the candidate
set of a value is finite, but large.
"""

import math
import re

_FRACTION = re.compile(r"RATIO|FRAC|DROPOUT|WARMUP|WARMDOWN")
_BETA = re.compile(r"BETA|MOMENTUM|EMA")
# A 0/1 integer is a switch, toggled rather than scaled, when a word of its name says so or its
# comment documents what 0 or 1 means (`SHOW_PRICE = 0  # 1: add the price sentence`).
_FLAG_WORDS = frozenset({"USE", "ENABLE", "ENABLED", "DISABLE", "DISABLED", "FLAG", "ON", "OFF", "NO", "COMPILE"})
_FLAG_COMMENT = re.compile(r"#\s*\(?[01]\s*[:=]")
RESOLUTION = 0.01  # finer steps stop below 1 % of the value (fractions: 0.01 absolute; ints: 1)


def is_flag(name, value, comment=""):
    """A bool, or a 0/1 int whose name or comment marks it as a switch."""
    if isinstance(value, bool):
        return True
    return type(value) is int and value in (0, 1) and bool(
        _FLAG_WORDS & set(name.split("_")) or _FLAG_COMMENT.search(comment))


def step_kind(name, value, flag=False):
    """How a constant moves: toggle | int | beta (in 1-β space) | fraction | zero | scale."""
    if isinstance(value, bool) or (flag and value in (0, 1)):
        return "toggle"
    if isinstance(value, int):
        return "int"
    if _BETA.search(name) and 0 < value < 1:
        return "beta"
    if _FRACTION.search(name) and 0 <= value <= 1:
        return "fraction"
    return "zero" if value == 0 else "scale"


def format_value(value, like):
    """Write `value` in the style of the literal it replaces (three significant digits)."""
    if isinstance(value, int):  # bools too: str(True) is "True"
        return str(value)
    rounded = float(f"{value:.3g}")
    if "e" in like.lower():
        mantissa, exponent = f"{rounded:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    text = repr(rounded)
    return text if ("." in text or "e" in text) else text + ".0"


def _format_beta(value):
    """Three significant digits of 1-β: 0.9995 stays 0.9995 instead of rounding to 1.0."""
    gap = float(f"{1 - value:.3g}")
    decimals = max(1, 2 - math.floor(math.log10(gap)))
    return f"{1 - gap:.{decimals}f}".rstrip("0").rstrip(".") if 0 < gap < 1 else format_value(value, "0.0")


def _round(x):
    return math.floor(x + 0.5)  # half up, so 2 × 1.25 gives 3 rather than Python's 2


def _int_steps(value):
    if value < 0:
        return [-v for v in _int_steps(-value)]
    if value == 0:
        return [1]
    doubling, quarter, unit = [value * 2, value // 2], [_round(value * 1.25), _round(value * 0.75)], [value + 1, value - 1]
    if value >= 4 and value & (value - 1) == 0:  # widths and batches: a power of two stays one first
        order = doubling + quarter + unit
    elif value <= 16:  # counts such as depth or heads: the nearest step first
        order = unit + quarter + doubling
    else:
        order = quarter + doubling + unit
    return [v for v in order if v >= 1]


def candidate_values(name, value, flag=False):
    """The coarse steps from `value`, most promising first; never the value itself."""
    kind = step_kind(name, value, flag)
    if kind == "toggle":
        options = [not value] if isinstance(value, bool) else [1 - value]
    elif kind == "int":
        options = _int_steps(value)
    elif kind == "beta":  # move the distance to 1: 0.9 -> 0.95 / 0.8
        options = [v for v in (1 - (1 - value) / 2, 1 - (1 - value) * 2) if 0 < v < 1]
    elif kind == "fraction":
        options = [min(1.0, value + 0.1), max(0.0, value - 0.1)]
    elif kind == "zero":  # off; no scale to refine from: a small and a large value
        options = [0.01, 0.1]
    else:
        options = [value * 3, value / 3, value * 1.5, value / 1.5]  # coarse first, as a log sweep
    unique = []
    for option in options:
        if option != value and option not in unique:
            unique.append(option)
    return unique


def _midpoint(kind, value, other):
    """Halfway from `value` to a tried `other` in the constant's own space; None below resolution."""
    if kind == "int":
        middle = _round((value + other) / 2)
        return None if middle in (value, other) else middle
    if kind == "fraction":
        middle = (value + other) / 2
        return None if abs(middle - value) < RESOLUTION else middle
    if kind == "beta" and 0 < other < 1:  # geometric in 1-β: 0.9 and 0.99 meet at 0.968
        gap = math.sqrt((1 - value) * (1 - other))
        return None if abs(gap - (1 - value)) < RESOLUTION * (1 - value) else 1 - gap
    if kind == "scale" and other * value > 0:  # geometric: learning rates live on a log scale
        middle = math.copysign(math.sqrt(value * other), value)
        return None if abs(middle - value) < RESOLUTION * abs(value) else middle
    return None


def is_valid(kind, value, number):
    """Whether a constant of this kind, now at `value`, may take `number` (positive ints stay >= 1)."""
    if kind == "int":
        return number == int(number) and (number >= 1 or value <= 0)
    if kind == "beta":
        return 0 < number < 1
    return kind != "fraction" or 0 <= number <= 1


def parse_number(text):
    """A literal as a finite float (True is 1.0), or None."""
    text = str(text).strip()
    if text in ("True", "False"):
        return float(text == "True")
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def literal_for(value, like, kind, number):
    """`number` written as a literal for a constant now at `value`, written `like`."""
    if isinstance(value, bool):
        return str(bool(number))
    if isinstance(value, int):
        return str(round(number))
    return _format_beta(number) if kind == "beta" else format_value(float(number), like)


def step_size(kind, value, number):
    """How far a step goes, comparable within one constant (relative, or in 1-β space)."""
    if kind == "beta":
        return abs(math.log((1 - number) / (1 - value)))
    if kind == "scale" and number * value > 0:
        return abs(math.log(number / value))
    return abs(number - value) / (max(1, abs(value)) if kind == "int" else 1)


def refinements(value, like, kind, seen, direction):
    """Finer steps: halve the gap between the value and a tried neighbour, closest gaps first.

    After 0.06 was tried from 0.04 the next is 0.049, then 0.0443, ...: on each side the bracket
    around the value halves until it is below the resolution. Those steps come first (the kept
    direction's side first, else the side with the wider gap); then the gaps to farther tried
    values, the nearest of each side first (an integer tried at ±1 halves from its ±25 % step).
    """
    ranked = []
    for side in (1, -1):
        others = sorted((v for v in seen if (v - value) * side > 0), key=lambda v: abs(v - value))
        against, found = bool(direction) and (side > 0) != (direction > 0), []
        for index, other in enumerate(others):
            middle = _midpoint(kind, value, other)
            number = None if middle is None else parse_number(literal_for(value, like, kind, middle))
            if number is not None and number not in (value, other) and number not in seen and number not in found:
                ranked.append((against, index > 0, len(found), -step_size(kind, value, number), number))
                found.append(number)
    return [number for *_, number in sorted(ranked)]
