"""The offline proposer: no key, no network. Moves one UPPER_CASE constant per experiment.

Per constant, in this order: coarse steps from its value (×1.5 / ×3 for scales, ×2 / ±25 % / ±1
for integers, toggles for flags), then finer steps that halve the gap between the value and a
tried neighbour down to a resolution, then values measured only against an older head (the head
moved since, so the old verdict may no longer hold; near misses first). A value measured against
the head a proposal builds on is never proposed again. Across constants, those tried least come
first and one whose change was kept is pushed further the same way. On a CPU baseline a constant
with a `CPU_` twin is GPU-only and left alone (and vice versa); a seed is never touched.
"""

import ast
import dataclasses
import random
import re

from bot.errors import ProposalError
from bot.proposal import Proposal
from bot.proposers.steps import (candidate_values, format_value, is_flag, is_valid, literal_for, parse_number,
                                 refinements, step_kind, step_size)

__all__ = ["Constant", "OfflineProposer", "candidate_values", "find_constants", "format_value", "human_direction"]

_UPPER = re.compile(r"^[A-Z][A-Z0-9_]*$")
RETRY_COST = 2  # across constants a re-try counts as this many extra tries (a near miss as 1)


@dataclasses.dataclass(frozen=True)
class Constant:
    path: str
    name: str
    value: object  # int, float or bool
    literal: str  # the literal as written in the file
    line: int  # 1-based
    start: int  # column offsets of the literal on that line
    end: int
    comment: str = ""  # the rest of the line after the literal


def find_constants(path, text):
    """Top-level `NAME = <number or bool>` assignments, in file order."""
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
        row = lines[value.lineno - 1]
        found.append(Constant(path, target.id, number, row[value.col_offset : value.end_col_offset],
                              value.lineno, value.col_offset, value.end_col_offset, row[value.end_col_offset:]))
    return found


def _number(node):
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return -inner if inner is not None and not isinstance(inner, bool) else None
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        return node.value
    return None


@dataclasses.dataclass
class _Past:
    """What the ledger says about each constant's values (numbers, so 6e-2 and 0.06 are one)."""
    seen: dict  # name -> values measured on any head (both ends of each change)
    at_head: dict  # name -> values measured against the head this proposal builds on
    tries: dict  # name -> experiments that changed it
    kept_direction: dict  # name -> +1/-1, the way of its last kept change
    outcome: dict  # (name, value) -> (gain in σ of its best discard or None, ran without crashing, last id)


def _history(records, base_commit=None):
    past = _Past({}, {}, {}, {}, {})
    for record in records:
        change = record.get("change") or {}
        name = change.get("name")
        if not name or record.get("status") == "invalid":
            continue
        ends = {v for v in (parse_number(change.get("old")), parse_number(change.get("new"))) if v is not None}
        past.seen.setdefault(name, set()).update(ends)
        if base_commit is None or record.get("parent") == base_commit:
            past.at_head.setdefault(name, set()).update(ends)
        past.tries[name] = past.tries.get(name, 0) + 1
        status, new = record.get("status"), parse_number(change.get("new"))
        if status == "keep" and None not in (new, parse_number(change.get("old"))):
            past.kept_direction[name] = 1 if new > parse_number(change["old"]) else -1
        gain, ran, _ = past.outcome.get((name, new), (None, False, None))
        evidence = record.get("evidence") or {}
        if status == "discard" and evidence.get("improvement") is not None:
            sigma = evidence.get("sigma")
            this = evidence["improvement"] / sigma if sigma else (0.0 if evidence["improvement"] >= 0 else None)
            if evidence.get("near_miss"):  # the decision rule's own verdict: in the grey zone
                this = max(this if this is not None else -1.0, -1.0)
            if evidence.get("noisier"):  # it only looked close because its runs were noisy
                this = None
            gain = this if gain is None or (this is not None and this > gain) else gain
        past.outcome[(name, new)] = (gain, ran or status not in ("crash", "gate-failed"), record.get("id"))
    return past


_TRY = re.compile(r"\b([A-Z][A-Z0-9_]*)\b(?:\s*(?:=|->|→|\bto\b)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?")


def _same_number(a, b):
    return parse_number(a) is not None and parse_number(a) == parse_number(b)


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
            old, new = parse_number(change.get("old")), parse_number(change.get("new"))
            if change.get("name") and None not in (old, new) and old != new:
                rejected[change["name"]] = 1 if new > old else -1
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

    def propose(self, base_files, history, device=None, experiment_id=0, avoid=(), base_commit=None):
        """One Proposal that changes one constant; ProposalError when nothing is left to try.

        base_commit: the commit the proposal builds on (the tracking head). Values measured
        against it are never proposed again; values measured only against older heads may be.
        None: every value measured on any head counts as tried.
        """
        rng = random.Random(f"{self.seed}:{experiment_id}")
        past = _history(history, base_commit)
        wanted, rejected = human_direction(history)
        kept = {name: way for name, way in past.kept_direction.items() if name not in rejected}
        avoided = {(name, parse_number(literal)) for name, literal in avoid}
        asked = self._asked(base_files, wanted, past, avoided)
        if asked:
            return asked
        boosted = {name for name, value, _ in wanted if value is None}
        options = []
        for path in sorted(p for p in base_files if p.endswith(".py")):
            for constant in _active(find_constants(path, base_files[path]), device):
                if "SEED" in constant.name:
                    continue
                pick = _pick(constant, past, kept.get(constant.name), rejected.get(constant.name), avoided)
                if pick:
                    literal, cost, why = pick
                    score = past.tries.get(constant.name, 0) + cost - (5 if constant.name in boosted else 0)
                    options.append((score, _priority(constant.name), rng.random(), constant, literal, why))
        if not options:
            raise ProposalError(
                "the offline proposer has tried every value it can reach, down to its finest step, of "
                "every UPPER_CASE constant in the editable files on this head: add constants, edit "
                "train.py by hand, or set `proposer: anthropic`"
            )
        _, _, _, constant, literal, why = min(options, key=lambda option: option[:3])
        return _proposal(base_files, constant, literal, why)

    def _asked(self, base_files, wanted, past, avoided):
        """The oldest `/autoresearch try NAME VALUE` that can still be done, as a Proposal."""
        for name, value, who in wanted:
            if value is None:
                continue
            for path in sorted(p for p in base_files if p.endswith(".py")):
                constant = next((c for c in find_constants(path, base_files[path]) if c.name == name), None)
                if constant is None or _same_number(constant.literal, value):
                    continue
                if parse_number(value) in past.at_head.get(name, ()) or (name, parse_number(value)) in avoided:
                    continue
                return _proposal(base_files, constant, value, f"asked for by @{who} with /autoresearch try")
        return None


def _active(constants, device):
    """Drop the constants this device does not use (the `CPU_` twin convention)."""
    names = {c.name for c in constants}
    if device == "cpu":
        return [c for c in constants if "CPU_" + c.name not in names]
    if device:
        return [c for c in constants if not (c.name.startswith("CPU_") and c.name[4:] in names)]
    return constants


def _pick(constant, past, direction, rejected_way, avoided):
    """This constant's best next value as (literal, cost, rationale), or None. The cost is added
    to the constant's tries when constants are compared: negative for one whose change was kept,
    positive for a re-try."""
    name, value = constant.name, constant.value
    kind = step_kind(name, value, is_flag(name, value, constant.comment))
    seen, at_head = past.seen.get(name, set()), past.at_head.get(name, set())

    def usable(number):
        return (number is not None and number != value and number not in at_head and is_valid(kind, value, number)
                and (name, number) not in avoided and not (rejected_way and (number > value) == (rejected_way > 0)))

    coarse = candidate_values(name, value, kind == "toggle")
    if direction:  # keep pushing the way that helped
        coarse.sort(key=lambda v: 0 if (v > value) == (direction > 0) else 1)
    tries, bonus = past.tries.get(name, 0), -2 if direction else 0  # a constant that paid off comes first
    for stage, numbers in (("coarse", coarse), ("finer", refinements(value, constant.literal, kind, seen, direction))):
        for number in numbers:
            literal = literal_for(value, constant.literal, kind, number)
            if parse_number(literal) in seen or not usable(parse_number(literal)):
                continue
            if stage == "finer":
                why = f"the coarse steps of {name} were tried; a finer one, halfway to the nearest value tried"
            elif direction and (number > value) == (direction > 0):
                why = f"an earlier change to {name} in this direction was kept; push further"
            elif tries:
                kept = "" if name in past.kept_direction else " without a keep"
                why = f"{name} was tried {tries} time(s){kept}; try another value"
            else:
                why = f"{name} has not been tried yet"
            return literal, bonus, why
    retries = []  # measured only against older heads: the head has moved since
    for number in seen:
        literal = literal_for(value, constant.literal, kind, number)
        if parse_number(literal) == number and usable(number):
            gain, ran, last = past.outcome.get((name, number), (None, True, None))
            near = gain is not None and gain >= -1  # within 1σ of the head it was measured against
            rank = (not near, -gain if near else 0, not ran, step_size(kind, value, number), literal)
            retries.append((rank, literal, near, gain, last))
    if not retries:
        return None
    _, literal, near, gain, last = min(retries)
    why = f"{name} = {literal} was measured only against an older head"
    why += f" (experiment {last:04d})" if isinstance(last, int) else ""
    if near:
        why += (", where it was no worse than the head within the noise" if gain >= 0
                else f", where it fell short of the head by only {-gain:.1f}σ")
    return literal, 1 if near else RETRY_COST, why + "; the head has moved since, so measure it again"


_LEARNING_RATE = re.compile(r"(^|_)(LR|LEARNING_RATE)(_|$)")


def _priority(name):
    """Among constants tried equally often, learning rates first: in a fixed budget they are what
    most often pays (program.md's priorities), so a short run tries them before the rest."""
    return 0 if _LEARNING_RATE.search(name) else 1


def _proposal(base_files, constant, literal, why):
    lines = base_files[constant.path].split("\n")
    row = lines[constant.line - 1]
    lines[constant.line - 1] = row[: constant.start] + literal + row[constant.end :]
    return Proposal(
        description=f"{constant.name} {constant.literal} -> {literal}",
        rationale=why,
        files={constant.path: "\n".join(lines)},
        change={"file": constant.path, "name": constant.name, "old": constant.literal, "new": literal},
    )
