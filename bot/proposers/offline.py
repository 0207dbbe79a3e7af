"""The offline proposer: no key, no network. Mutates one UPPER_CASE constant per experiment.

It reads the ledger: a value already tried for a name is never proposed again, names tried
least come first, and a name whose change was kept is pushed further the same way. On a CPU
baseline a constant with a `CPU_` twin is GPU-only and left alone (and vice versa), so no
experiment is spent on a number the run does not use.
"""

import ast
import dataclasses
import random
import re

from bot.errors import ProposalError
from bot.proposal import Proposal

_UPPER = re.compile(r"^[A-Z][A-Z0-9_]*$")
_FRACTION = re.compile(r"RATIO|FRAC|DROPOUT|WARMUP|WARMDOWN")
_BETA = re.compile(r"BETA|MOMENTUM|EMA")


@dataclasses.dataclass(frozen=True)
class Constant:
    path: str
    name: str
    value: object  # int or float
    literal: str  # the literal as written in the file
    line: int  # 1-based
    start: int  # column offsets of the literal on that line
    end: int


def find_constants(path, text):
    """Top-level `NAME = <number>` assignments, in file order."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    lines = text.splitlines()
    found = []
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if not (isinstance(target, ast.Name) and _UPPER.match(target.id)):
            continue
        number = _number(value)
        if number is None or value.lineno != value.end_lineno:
            continue
        literal = lines[value.lineno - 1][value.col_offset : value.end_col_offset]
        found.append(Constant(path, target.id, number, literal, value.lineno, value.col_offset, value.end_col_offset))
    return found


def _number(node):
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return -inner if inner is not None else None
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    return None


def format_value(value, like):
    """Write `value` in the style of the literal it replaces."""
    if isinstance(value, int):
        return str(value)
    rounded = float(f"{value:.3g}")
    if "e" in like.lower():
        mantissa, exponent = f"{rounded:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    text = repr(rounded)
    return text if ("." in text or "e" in text) else text + ".0"


def candidate_values(name, value):
    """Neighbouring values worth trying, nearest first; never the value itself."""
    if isinstance(value, int):
        if value <= 0:
            options = [value + 1, 1] if value == 0 else [value + 1, value - 1]
        elif value & (value - 1) == 0 and value >= 4:  # a power of two stays one
            options = [value * 2, value // 2]
        elif value <= 16:
            options = [value + 1, value - 1]
        else:
            options = [round(value * 1.5), round(value / 1.5)]
        options = [v for v in options if v >= 1 or value <= 0]
    elif _BETA.search(name) and 0 < value < 1:
        options = [1 - (1 - value) / 2, 1 - (1 - value) * 2]
        options = [v for v in options if 0 < v < 1]
    elif _FRACTION.search(name) and 0 <= value <= 1:
        options = [min(1.0, value + 0.1), max(0.0, value - 0.1)]
    elif value == 0:
        options = [0.01, 0.1]
    else:
        options = [value * 1.5, value / 1.5, value * 3, value / 3]
    unique = []
    for option in options:
        if option != value and option not in unique:
            unique.append(option)
    return unique


def _active(constants, device):
    """Drop the constants this device does not use (the `CPU_` twin convention)."""
    names = {c.name for c in constants}
    if device == "cpu":
        return [c for c in constants if "CPU_" + c.name not in names]
    if device:
        return [c for c in constants if not (c.name.startswith("CPU_") and c.name[4:] in names)]
    return constants


def _history(records):
    """Per constant name: values tried, and the direction of the last kept change (+1/-1)."""
    tried, kept_direction, tries = {}, {}, {}
    for record in records:
        change = record.get("change") or {}
        name = change.get("name")
        if not name:
            continue
        # both ends of a change were measured: neither is worth proposing again
        tried.setdefault(name, set()).update({str(change.get("new")), str(change.get("old"))})
        tries[name] = tries.get(name, 0) + 1
        if record.get("status") == "keep":
            try:
                kept_direction[name] = 1 if float(change["new"]) > float(change["old"]) else -1
            except (KeyError, TypeError, ValueError):
                pass
    return tried, kept_direction, tries


_TRY = re.compile(r"\b([A-Z][A-Z0-9_]*)\b(?:\s*(?:=|->|→|\bto\b)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?")


def _same_number(a, b):
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def human_direction(records):
    """People's `/autoresearch try` and `reject` notes from the ledger.

    Returns (wanted, rejected): wanted lists the (name, value or None, who) of `try` notes
    that no later experiment has carried out yet; rejected maps a constant to the direction
    (+1 up, -1 down) of a change someone rejected: that way is not proposed again.
    """
    by_id = {r.get("id"): r for r in records}
    wanted, rejected = [], {}
    for index, record in enumerate(records):
        if record.get("kind") == "reject":
            change = (by_id.get(record.get("about")) or {}).get("change") or {}
            try:
                rejected[change["name"]] = 1 if float(change["new"]) > float(change["old"]) else -1
            except (KeyError, TypeError, ValueError):
                pass
        elif record.get("kind") == "try":
            match = _TRY.search(record.get("text") or "")
            if not match:
                continue
            name, value = match.group(1), match.group(2)
            later = [r.get("change") or {} for r in records[index + 1:]]
            if not any(c.get("name") == name and (value is None or _same_number(c.get("new"), value)) for c in later):
                wanted.append((name, value, record.get("by")))
    return wanted, rejected


class OfflineProposer:
    name = "offline"

    def __init__(self, seed=42):
        self.seed = seed

    def propose(self, base_files, history, device=None, experiment_id=0, avoid=()):
        """One Proposal that changes one constant; ProposalError when nothing is left to try."""
        rng = random.Random(f"{self.seed}:{experiment_id}")
        tried, kept_direction, tries = _history(history)
        wanted, rejected = human_direction(history)
        for name in rejected:
            kept_direction.pop(name, None)
        asked = self._asked(base_files, wanted, tried, avoid)
        if asked:
            return asked
        boosted = {name for name, value, _ in wanted if value is None}
        options = []
        for path in sorted(base_files):
            if not path.endswith(".py"):
                continue
            for constant in _active(find_constants(path, base_files[path]), device):
                if "SEED" in constant.name:
                    continue
                values = candidate_values(constant.name, constant.value)
                direction = kept_direction.get(constant.name)
                if direction:  # keep pushing the way that helped
                    values.sort(key=lambda v: 0 if (v > constant.value) == (direction > 0) else 1)
                for value in values:
                    literal = format_value(value, constant.literal)
                    if literal in tried.get(constant.name, set()) or float(literal) == constant.value:
                        continue
                    if _BETA.search(constant.name) and 0 < constant.value < 1 and not 0 < float(literal) < 1:
                        continue  # rounding pushed a beta to 1.0
                    if (constant.name, literal) in avoid:
                        continue
                    if constant.name in rejected and (value > constant.value) == (rejected[constant.name] > 0):
                        continue  # a person rejected moving this constant this way
                    score = tries.get(constant.name, 0) - (2 if direction else 0) - (5 if constant.name in boosted else 0)
                    options.append((score, rng.random(), constant, literal))
                    break  # the best untried value of this constant
        if not options:
            raise ProposalError(
                "the offline proposer has tried every neighbouring value of every UPPER_CASE "
                "constant in the editable files: add constants, edit train.py by hand, or use "
                "`proposer: anthropic`"
            )
        _, _, constant, literal = min(options, key=lambda option: option[:2])
        return self._proposal(base_files, constant, literal, tries.get(constant.name, 0), kept_direction)

    def _asked(self, base_files, wanted, tried, avoid):
        """The oldest `/autoresearch try NAME VALUE` that can still be done, as a Proposal."""
        for name, value, who in wanted:
            if value is None:
                continue
            for path in sorted(p for p in base_files if p.endswith(".py")):
                constant = next((c for c in find_constants(path, base_files[path]) if c.name == name), None)
                if constant is None or _same_number(constant.literal, value):
                    continue
                if value in tried.get(name, set()) or (name, value) in avoid:
                    continue
                proposal = self._proposal(base_files, constant, value, 0, {})
                return dataclasses.replace(proposal, rationale=f"asked for by @{who} with /autoresearch try")
        return None

    def _proposal(self, base_files, constant, literal, times_tried, kept_direction):
        lines = base_files[constant.path].split("\n")
        row = lines[constant.line - 1]
        lines[constant.line - 1] = row[: constant.start] + literal + row[constant.end :]
        if constant.name in kept_direction:
            why = f"an earlier change to {constant.name} in this direction was kept; push further"
        elif times_tried:
            why = f"{constant.name} was tried {times_tried} time(s) without a keep; try another value"
        else:
            why = f"{constant.name} has not been tried yet"
        return Proposal(
            description=f"{constant.name} {constant.literal} -> {literal}",
            rationale=why,
            files={constant.path: "\n".join(lines)},
            change={"file": constant.path, "name": constant.name, "old": constant.literal, "new": literal},
        )
