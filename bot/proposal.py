"""A proposed change and the checks it must pass before any compute is spent. Pure.

A proposal replaces the text of one or more editable files. It is refused when it touches
a file that is not editable (the harness above all), changes nothing, is too large, no longer
parses, imports a package the training box may not have, newly starts processes, reaches the
network or runs code built at run time (unless allowed), only changes a seed, or repeats a
diff that was already tried. These checks save compute; the sandbox the run gets is the boundary.
"""

import ast
import dataclasses
import difflib
import functools
import hashlib
import posixpath
import re
import sys

from bot.errors import ProposalError
from bot.proposal_checks import is_allowed, risky_constructs, seed_masked

# Third-party modules a train.py may import beyond the standard library.
ALLOWED_IMPORTS = frozenset({"torch", "numpy", "prepare", "triton", "kernels", "pyarrow", "math"})
MAX_FILE_BYTES = 1_000_000  # per proposed file, as UTF-8


@dataclasses.dataclass(frozen=True)
class Proposal:
    description: str
    rationale: str
    files: dict  # path -> new full text
    change: dict = None  # structured detail, e.g. {"file", "name", "old", "new"} for a constant
    # Who proposed it and at what price: {proposer, model, tokens, usd, price_known, warnings}.
    meta: dict = None
    # Set when the proposer's answer could not be read as a change; validation refuses it with this.
    error: str = None


def is_editable(path, editable_globs):
    """Whether a repository path matches one of the globs, as in .gitignore or pathlib: `*`, `?`
    and `[abc]` stay within one path segment, and a `**` segment matches any number of whole
    segments (`**/*.py` matches `a.py` and `a/b/c.py`). Case matters. A path that is not plain
    (absolute, or with an empty, `.` or `..` segment) matches nothing."""
    segments = path.split("/")
    if "\\" in path or any(seg in ("", ".", "..") for seg in segments):
        return False
    return any(_glob_regex(pattern).fullmatch(path) for pattern in editable_globs)


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern):
    parts = pattern[2:].split("/") if pattern.startswith("./") else pattern.split("/")
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += r"[^/]+(?:/[^/]+)*" if last else r"(?:[^/]+/)*"
        else:
            regex += _segment_regex(part) + ("" if last else "/")
    return re.compile(regex)


def _segment_regex(segment):
    out, i = "", 0
    while i < len(segment):
        char = segment[i]
        i += 1
        if char == "*":
            while i < len(segment) and segment[i] == "*":  # `a**b` within a segment is `a*b`
                i += 1
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[" and "]" in segment[i + (segment[i:i + 1] in "!^") + 1:]:
            start = i + (segment[i] in "!^")
            end = segment.index("]", start + 1)  # a `]` first in the class is literal: `[]a]`
            body = re.sub(r"([\\\[&~|^])", r"\\\1", segment[start:end])
            out += "(?!/)[" + ("^" if start > i else "") + body + "]"  # never `/`, not even in a range
            i = end + 1
        else:
            out += re.escape(char)
    return out


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


def _parse(text, path="<base>"):
    """The module's AST; SyntaxError (also for null bytes or absurd nesting) when there is none."""
    try:
        return ast.parse(text, filename=path)
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SyntaxError(f"{str(exc) or type(exc).__name__}: write it with less nesting and no null bytes") from None


def _seed_kind(path, before, after, trees=(None, None)):
    """"none" (comments or layout only), "seed" (only what feeds a random seed) or "real".

    Python is compared by AST with everything that only flows into a seeding call masked
    (`X = 43` read only by `manual_seed(X)` is a seed); other text by the word "seed" per line.
    trees: the ASTs of before and after where parsed already (they are masked in place).
    """
    if path.endswith(".py"):
        try:
            old, new = trees[0] or _parse(before), trees[1] or _parse(after)
            if ast.dump(old) == ast.dump(new):
                return "none"
            return "seed" if seed_masked(before, old) == seed_masked(after, new) else "real"
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass
    lines = [line for line in changed_lines(before, after)
             if line[1:].strip() and not line[1:].strip().startswith("#")]  # comments change no run
    if not lines:
        return "none"
    return "seed" if all(_SEED_WORD.search(line) for line in lines) else "real"


def _check_python(path, text, before, allowed_imports, allowed_calls):
    try:
        tree = _parse(text, path)
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else ""
        raise ProposalError(f"{path} no longer parses: {where}{exc.msg}") from None
    try:
        old_tree = _parse(before)
    except SyntaxError:
        old_tree = None  # a broken base vouches for nothing
    old_modules = _top_modules(old_tree) if old_tree else set()
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    new = _top_modules(tree) - old_modules - stdlib - set(allowed_imports)
    if new:
        raise ProposalError(
            f"{path} imports {', '.join(sorted(new))}, which the training box may not have: "
            "use the standard library, torch or numpy"
        )
    try:
        old_keys = {key for _, key, _ in risky_constructs(old_tree)} if old_tree else set()
        found = {}  # key -> (line, source), first use of each construct the base does not have
        for line, key, source in risky_constructs(tree):
            if key not in old_keys and not is_allowed(key, allowed_calls):
                found.setdefault(key, (line, source))
    except RecursionError:
        raise ProposalError(f"{path} is nested too deeply to check: flatten the expression") from None
    if found:
        uses = "; ".join(f"line {line}: `{source}` uses {key}" for key, (line, source) in found.items())
        raise ProposalError(
            f"{path}, {uses}: experiments may not newly start processes, reach the network or run code "
            f"built at run time. Remove it, or allow it in autoresearch.yaml with "
            f"`allowed_calls: [{', '.join(found)}]`"
        )
    return old_tree, tree


def validate(proposal, base_files, editable, harness=(), tried_hashes=(), allowed_imports=ALLOWED_IMPORTS,
             *, max_file_bytes=MAX_FILE_BYTES, allowed_calls=()):
    """Return the proposal's diff hash, or raise ProposalError saying what is wrong with it.

    base_files: {path: text} of the files the proposal edits, at the commit it builds on
    (a path missing from it is a new file). max_file_bytes: the largest proposed file, as
    UTF-8. allowed_calls: constructs a changed .py file may newly use although they can start
    processes, reach the network or run dynamic code: import names (`subprocess`), dotted
    names (`os.system`, `os.exec*`), `eval`, `getattr(os)`, `open(/proc)`, ...
    """
    if proposal.error:
        raise ProposalError(proposal.error)
    if not proposal.description.strip():
        raise ProposalError("the proposal has no description: say in one line what it changes")
    if not proposal.files:
        raise ProposalError("the proposal changes no file")
    allowed_calls = (allowed_calls,) if isinstance(allowed_calls, str) else tuple(allowed_calls)
    harness = {normalize_path(path) for path in harness}
    for raw in proposal.files:
        path = normalize_path(raw)
        if path in harness:
            raise ProposalError(f"{path} is the frozen harness; proposals may edit only {', '.join(editable)}")
        if not is_editable(path, editable):
            raise ProposalError(f"{path} is not editable; proposals may edit only {', '.join(editable)}")
        if path != raw:
            raise ProposalError(f"{raw}: name files by their plain path ({path})")
        text = proposal.files[raw]
        if not isinstance(text, str):
            raise ProposalError(f"{path}: the proposed content is not text")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise ProposalError(f"{path}: the proposed content is not valid Unicode (lone surrogates): send UTF-8 text") from None
        if size > max_file_bytes and text != base_files.get(path):
            raise ProposalError(
                f"{path} is {size} bytes, over the limit of {max_file_bytes} bytes per proposed file: "
                "propose a smaller file, or raise `max_file_bytes` in autoresearch.yaml"
            )
    changed = {p: t for p, t in proposal.files.items() if t != base_files.get(p)}
    if not changed:
        raise ProposalError("the proposal changes nothing: every file is identical to its base")
    trees = {path: _check_python(path, text, base_files.get(path) or "", allowed_imports, allowed_calls)
             for path, text in changed.items() if path.endswith(".py")}
    kinds = {_seed_kind(path, base_files.get(path) or "", text, trees.get(path, (None, None)))
             for path, text in changed.items()}
    if "seed" in kinds and "real" not in kinds:
        raise ProposalError("the proposal only changes a random seed: that measures luck, not an idea")
    digest = diff_hash(base_files, changed)
    if digest in set(tried_hashes):
        raise ProposalError(f"this exact change was already tried (diff {digest}); propose something new")
    return digest
