"""A proposed change and the checks it must pass before any compute is spent. Pure.

A proposal replaces the text of one or more editable files. It is refused when it touches
a file that is not editable (the harness above all), changes nothing, no longer parses,
imports a package the training box may not have, only changes a seed, or repeats a diff
that was already tried.
"""

import ast
import dataclasses
import difflib
import fnmatch
import hashlib
import posixpath
import re
import sys

from bot.errors import ProposalError

# Third-party modules a train.py may import beyond the standard library.
ALLOWED_IMPORTS = frozenset({"torch", "numpy", "prepare", "triton", "kernels", "pyarrow", "math"})


@dataclasses.dataclass(frozen=True)
class Proposal:
    description: str
    rationale: str
    files: dict  # path -> new full text
    change: dict = None  # structured detail, e.g. {"file", "name", "old", "new"} for a constant


def is_editable(path, editable_globs):
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in editable_globs)


def changed_lines(old_text, new_text):
    """The removed (`-`) and added (`+`) lines of a diff, without positions."""
    old, new = old_text.splitlines(), new_text.splitlines()
    lines = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            lines += ["-" + line for line in old[i1:i2]] + ["+" + line for line in new[j1:j2]]
    return lines


def normalize_path(path):
    """`./prepare.py`, `sub/../prepare.py` → `prepare.py`; refuses paths that leave the repo."""
    clean = posixpath.normpath(path.replace("\\", "/"))
    if clean.startswith(("../", "/")) or clean in ("..", "."):
        raise ProposalError(f"{path} is outside the repository; name files relative to its root")
    return clean


def diff_hash(base_files, proposal_files):
    """Identity of a change independent of line numbers: the same edit hashes the same."""
    digest = hashlib.sha256()
    for path in sorted(proposal_files):
        digest.update(path.encode() + b"\0")
        for line in changed_lines(base_files.get(path) or "", proposal_files[path]):
            digest.update(line.encode() + b"\n")
    return digest.hexdigest()[:16]


def _top_modules(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


_SEED_WORD = re.compile(r"seed", re.IGNORECASE)


def _seed_only(base_files, proposal_files):
    lines = [
        line
        for path, text in proposal_files.items()
        for line in changed_lines(base_files.get(path) or "", text)
        if line[1:].strip() and not line[1:].strip().startswith("#")  # comments change no run
    ]
    return bool(lines) and all(_SEED_WORD.search(line) for line in lines)


def validate(proposal, base_files, editable, harness=(), tried_hashes=(), allowed_imports=ALLOWED_IMPORTS):
    """Return the proposal's diff hash, or raise ProposalError saying what is wrong with it.

    base_files: {path: text} of the files the proposal edits, at the commit it builds on
    (a path missing from it is a new file).
    """
    if not proposal.description.strip():
        raise ProposalError("the proposal has no description: say in one line what it changes")
    if not proposal.files:
        raise ProposalError("the proposal changes no file")
    harness = {normalize_path(path) for path in harness}
    for raw in proposal.files:
        path = normalize_path(raw)
        if path in harness:
            raise ProposalError(f"{path} is the frozen harness; proposals may edit only {', '.join(editable)}")
        if not is_editable(path, editable):
            raise ProposalError(f"{path} is not editable; proposals may edit only {', '.join(editable)}")
        if path != raw:
            raise ProposalError(f"{raw}: name files by their plain path ({path})")
        if not isinstance(proposal.files[raw], str):
            raise ProposalError(f"{path}: the proposed content is not text")
    changed = {p: t for p, t in proposal.files.items() if t != base_files.get(p)}
    if not changed:
        raise ProposalError("the proposal changes nothing: every file is identical to its base")
    for path, text in changed.items():
        if not path.endswith(".py"):
            continue
        try:
            tree = ast.parse(text, filename=path)
        except SyntaxError as exc:
            raise ProposalError(f"{path} no longer parses: line {exc.lineno}: {exc.msg}") from None
        before = base_files.get(path) or ""
        try:
            old_modules = _top_modules(ast.parse(before))
        except SyntaxError:
            old_modules = set()
        stdlib = set(getattr(sys, "stdlib_module_names", ()))
        new = _top_modules(tree) - old_modules - stdlib - set(allowed_imports)
        if new:
            raise ProposalError(
                f"{path} imports {', '.join(sorted(new))}, which the training box may not have: "
                "use the standard library, torch or numpy"
            )
    if _seed_only(base_files, changed):
        raise ProposalError("the proposal only changes a random seed: that measures luck, not an idea")
    digest = diff_hash(base_files, changed)
    if digest in set(tried_hashes):
        raise ProposalError(f"this exact change was already tried (diff {digest}); propose something new")
    return digest
