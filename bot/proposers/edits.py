"""A model's answer as file texts: the `propose_change` tool input, or what models write in
prose when they skip the tool (JSON, SEARCH/REPLACE blocks, a fenced whole file). Pure.

Search/replace edits are applied strictly first and then with the drift models introduce
(CRLF, trailing spaces, an indentation shifted as a whole); a search text must still match
exactly one place. Every refusal says what to send instead, because it goes back to the
model verbatim.
"""

import difflib
import json
import re

from bot.errors import ProposalError

TOOL_NAME = "propose_change"
TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "description": {"type": "string", "description": "One line: what changes, e.g. `MATRIX_LR 0.04 -> 0.05` or `swap GELU for ReLU^2`."},
        "rationale": {"type": "string", "description": "Why this should lower the metric within the fixed budget, in one to three sentences."},
        "edits": {
            "type": "array",
            "description": "Search/replace edits, applied in order. `search` must match exactly one place in the file as it is (copy the lines verbatim, with a few lines of context).",
            "items": {"type": "object", "properties": {"file": {"type": "string"}, "search": {"type": "string"},
                                                       "replace": {"type": "string"}},
                      "required": ["file", "search", "replace"]},
        },
        "files": {
            "type": "array",
            "description": "For a large change instead of edits: whole new file contents.",
            "items": {"type": "object", "properties": {"file": {"type": "string"}, "content": {"type": "string"}},
                      "required": ["file", "content"]},
        },
    },
    "required": ["description", "rationale"],
}


def _lf(text):
    return text.replace("\r\n", "\n").replace("\r", "\n") if isinstance(text, str) else text


def files_from_input(data, base_files):
    """(description, rationale, {path: new text}, edits) from a tool input dict."""
    if not isinstance(data, dict):
        raise ProposalError("the proposal is not an object with description, rationale and edits")
    description = " ".join(_lf(str(data.get("description") or "")).split())
    rationale = _lf(str(data.get("rationale") or "")).strip()
    edits, wholes = data.get("edits") or [], data.get("files") or []
    if not isinstance(edits, list) or not isinstance(wholes, list):
        raise ProposalError("`edits` and `files` must be lists")
    if not edits and not wholes:
        raise ProposalError("the proposal has no edits: give `edits` (search/replace) or `files` (whole contents)")
    files = {}
    for number, item in enumerate(wholes, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("file"), str) or not isinstance(item.get("content"), str):
            raise ProposalError(f"files[{number}] needs a `file` path and a `content` string")
        files[item["file"]] = _lf(item["content"])
    clean = []
    for number, item in enumerate(edits, start=1):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("file", "search", "replace")):
            raise ProposalError(f"edits[{number}] needs `file`, `search` and `replace` strings")
        clean.append({"file": item["file"], "search": _lf(item["search"]), "replace": _lf(item["replace"])})
    files.update(apply_edits({**base_files, **files}, clean, base_files))
    return description, rationale, files, clean


def apply_edits(current, edits, base_files=None):
    """The files `edits` change, as {path: new text}; ProposalError naming the edit that fails."""
    texts, changed = dict(current), {}
    for number, edit in enumerate(edits, start=1):
        path, search, replace = edit["file"], edit["search"], edit["replace"]
        where = f"edit {number} ({path})"
        if path not in texts:
            if search.strip():
                raise ProposalError(f"{where}: there is no file {path}; edit one of {', '.join(sorted(texts)) or 'the files shown'}")
            texts[path] = changed[path] = replace  # a new file
            continue
        if not search.strip():
            raise ProposalError(f"{where}: the search text is empty; quote the lines to replace exactly as they are")
        if search == replace:
            raise ProposalError(f"{where}: search and replace are identical, so it changes nothing")
        texts[path] = changed[path] = _replace_once(texts[path], search, replace, where)
    return changed


def _replace_once(text, search, replace, where):
    count = text.count(search)
    if count == 1:
        return text.replace(search, replace, 1)
    if count > 1:
        raise ProposalError(f"{where}: the search text matches {count} places; include more surrounding lines so it matches one")
    lines, wanted = text.split("\n"), search.strip("\n").split("\n")
    for same in (lambda a, b: a.rstrip() == b.rstrip(), lambda a, b: a.strip() == b.strip()):
        hits = [i for i in range(len(lines) - len(wanted) + 1)
                if all(same(lines[i + k], wanted[k]) for k in range(len(wanted)))]
        if len(hits) > 1:
            raise ProposalError(f"{where}: the search text matches {len(hits)} places (lines "
                                f"{', '.join(str(h + 1) for h in hits[:5])}); include more surrounding lines")
        if hits:
            start = hits[0]
            new = _reindent(replace.strip("\n").split("\n"), wanted, lines[start:start + len(wanted)])
            return "\n".join(lines[:start] + new + lines[start + len(wanted):])
    hint, first = "", wanted[0].strip()
    if first:
        scores = [difflib.SequenceMatcher(None, first, line.strip()[: len(first) + 8]).ratio() for line in lines]
        best = max(range(len(lines)), key=scores.__getitem__)
        if scores[best] >= 0.6:
            hint = f"; the closest line is {best + 1}: `{lines[best].strip()[:80]}`"
    raise ProposalError(f"{where}: the search text is not in the file{hint}. Copy the lines exactly as they are now")


def _reindent(replacement, searched, found):
    """Give the replacement the file's indentation where the model wrote another: each indent
    the search used maps to the one the file has on the same line (2 spaces → 4, tabs → spaces)."""
    def indent(line):
        return line[: len(line) - len(line.lstrip())]

    mapping = {}
    for wrote, have in zip(searched, found):
        if wrote.strip():
            mapping.setdefault(indent(wrote), indent(have))
    if all(k == v for k, v in mapping.items()):
        return replacement
    out = []
    for line in replacement:
        current = indent(line)
        if line.strip() and current in mapping:
            line = mapping[current] + line[len(current):]
        out.append(line)
    return out


# ---- answers in prose ---------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([\w.+-]*)[^\n]*\n(.*?)```", re.S)
_BLOCK = re.compile(r"<{5,9} ?SEARCH[^\n]*\n(.*?)\n?={5,9}\n(.*?)\n?>{5,9} ?REPLACE", re.S)
_LABEL = re.compile(r"^\W*(description|change|title|rationale|why|reason)\W*[:\-]\s*(.*)$", re.I)
_PATH = re.compile(r"([\w./-]+\.\w+)")


def files_from_text(text, base_files):
    """Read a proposal from a text answer. Returns what files_from_input returns."""
    text = _lf(text or "")
    data = _json_object(text)
    if data is not None:
        return files_from_input(data, base_files)
    description, rationale = _labels(text)
    blocks = list(_BLOCK.finditer(text))
    if blocks:
        edits, after = [], 0
        for block in blocks:  # the file is named in the lines just before its block
            header = " ".join(text[after:block.start()].strip().split("\n")[-3:])
            edits.append({"file": _path_in(header, base_files), "search": block.group(1), "replace": block.group(2)})
            after = block.end()
        files = apply_edits(base_files, edits, base_files)
        return description, rationale, files, edits
    fences = [(lang, body) for lang, body in _FENCE.findall(text) if lang.lower() in ("", "python", "py")]
    if fences:
        lang, body = max(fences, key=lambda fence: len(fence[1]))
        before = text[: text.find(body)].rstrip().rsplit("\n", 2)[-2:]
        path = _path_in(" ".join(before) + " " + body.split("\n", 1)[0], base_files)
        return description, rationale, {path: body}, []
    raise ProposalError("no change found in the answer: call the `propose_change` tool with description, "
                        "rationale and edits")


def _json_object(text):
    candidates = [body for _, body in _FENCE.findall(text)] + [text[text.find("{"): text.rfind("}") + 1]]
    for candidate in candidates:
        candidate = candidate.strip()
        if not candidate.startswith("{"):
            continue
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and ("edits" in data or "files" in data):
            return data
    return None


def _labels(text):
    """Description and rationale from `Description: ...` / `Rationale: ...` lines, else the
    first line of prose and the prose after it."""
    outside = _FENCE.sub("\n", _BLOCK.sub("\n", text))
    found = {}
    for line in outside.split("\n"):
        match = _LABEL.match(line.strip())
        if match and match.group(2).strip():
            kind = "description" if match.group(1).lower() in ("description", "change", "title") else "rationale"
            found.setdefault(kind, match.group(2).strip().strip("*`").strip())
    prose = [line.strip().strip("#*").strip() for line in outside.split("\n") if line.strip()]
    description = found.get("description") or (prose[0] if prose else "")
    rationale = found.get("rationale") or " ".join(p for p in prose[1:3] if p != description)
    return " ".join(description.split())[:200], rationale


def _path_in(text, base_files):
    named = [p for p in _PATH.findall(text or "") if p.strip("./") in base_files or p in base_files]
    if named:
        return named[-1].lstrip("./") if named[-1] not in base_files else named[-1]
    if len(base_files) == 1:
        return next(iter(base_files))
    raise ProposalError(f"the answer does not say which file it edits: name one of {', '.join(sorted(base_files))} "
                        "before each block")


# ---- re-applying a change on a moved head -------------------------------------------------

def rebase_files(old_base, proposed, new_base, context=3):
    """The proposal's change (`proposed` against `old_base`) applied to `new_base`, or None
    when a changed region is no longer there. Each region is matched with as much surrounding
    text as still matches uniquely (`context` lines down to none), so a neighbouring line that
    the new head changed does not stop it. Untouched files carry over as they are."""
    out = {}
    for path, text in proposed.items():
        before, now = old_base.get(path), new_base.get(path)
        if text == before:  # proposed unchanged: whatever the new head has
            out[path] = now
            continue
        if before is None or now == before:
            if now is not None and before is None:
                return None  # both created the file
            out[path] = text
            continue
        if now is None:
            return None
        old, new = before.split("\n"), text.split("\n")
        opcodes = [op for op in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes() if op[0] != "equal"]
        for _, i1, i2, j1, j2 in reversed(opcodes):  # bottom up: earlier regions keep their text
            now = _apply_region(now, old, new, i1, i2, j1, j2, path, context)
            if now is None:
                return None
        out[path] = now
    return out


def _apply_region(text, old, new, i1, i2, j1, j2, path, context):
    # context on both sides first, then on one side only (a line inserted next to the region on
    # the other side), then none
    sides = [pair for k in range(context, 0, -1) for pair in ((k, k), (k, 0), (0, k))] + [(0, 0)]
    for above, below in sides:
        top, bottom = min(above, i1), min(below, len(old) - i2)
        search = "\n".join(old[i1 - top:i2 + bottom])
        replace = "\n".join(old[i1 - top:i1] + new[j1:j2] + old[i2:i2 + bottom])
        if not search.strip():
            continue
        try:
            return _replace_once(text, search, replace, path)
        except ProposalError:
            continue
    return None
