"""Render parsed templates with a context. Every value is HTML-escaped unless `|safe`."""

from templite.parser import parse

# ---------------------------------------------------------------------------
# Tunables (experiments change these)

ESCAPE_CHUNK = 4  # characters examined per step when escaping
ESCAPE_QUOTES = 1  # 1: escape " and ' too, which attribute values need

# ---------------------------------------------------------------------------

_BASIC = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_QUOTES = {'"': "&quot;", "'": "&#x27;"}


def escape(text):
    table = dict(_BASIC, **_QUOTES) if ESCAPE_QUOTES else _BASIC
    special = set(table)
    out = []
    for start in range(0, len(text), ESCAPE_CHUNK):
        chunk = text[start:start + ESCAPE_CHUNK]
        if special.isdisjoint(chunk):
            out.append(chunk)
        else:
            out.append("".join(table.get(ch, ch) for ch in chunk))
    return "".join(out)


def _lookup(path, scopes):
    head = path[0]
    for scope in reversed(scopes):
        if head in scope:
            value = scope[head]
            break
    else:
        return None
    for part in path[1:]:
        if isinstance(value, dict):
            value = value.get(part)
        else:
            value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _apply(value, filters):
    safe = False
    for name in filters:
        if name == "safe":
            safe = True
        elif name == "length":
            value = len(value) if value is not None else 0
        else:
            value = getattr("" if value is None else str(value), name)()
    text = "" if value is None else str(value)
    return text if safe else escape(text)


def _render(nodes, scopes, out):
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "var":
            out.append(_apply(_lookup(node[1], scopes), node[2]))
        elif kind == "for":
            for item in _lookup(node[2], scopes) or ():
                scopes.append({node[1]: item})
                _render(node[3], scopes, out)
                scopes.pop()
        elif kind == "if":
            _render(node[2] if _lookup(node[1], scopes) else node[3], scopes, out)


def render(source, context):
    """Render template `source` with `context` (a dict; dotted names reach into dicts and objects)."""
    out = []
    _render(parse(source), [context], out)
    return "".join(out)
