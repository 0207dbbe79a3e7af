"""Template source → a tree of nodes, with an LRU cache of parsed templates.

    text            ("text", "literal text")
    {{ a.b|upper }} ("var", ("a", "b"), ("upper",))
    {% for x in xs %}...{% endfor %}           ("for", "x", ("xs",), [body])
    {% if a %}...{% else %}...{% endif %}      ("if", ("a",), [then], [otherwise])
    {# a comment #}                            (dropped)
"""

import collections
import re

# ---------------------------------------------------------------------------
# Tunables (experiments change these)

CACHE_SIZE = 4  # parsed templates kept (LRU); 0 parses every render

# ---------------------------------------------------------------------------

FILTERS = frozenset({"upper", "lower", "title", "length", "safe", "strip"})
_TOKEN = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.DOTALL)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_cache = collections.OrderedDict()


class TemplateSyntaxError(ValueError):
    """The template cannot be parsed; the message names the tag and what is wrong."""


def _path(expr, where):
    expr = expr.strip()
    if not _NAME.match(expr):
        raise TemplateSyntaxError(f"{where}: {expr!r} is not a name such as `user.name`")
    return tuple(expr.split("."))


def _var(inner):
    parts = [p.strip() for p in inner.split("|")]
    filters = tuple(parts[1:])
    for name in filters:
        if name not in FILTERS:
            raise TemplateSyntaxError(f"unknown filter {name!r} in {{{{ {inner.strip()} }}}}")
    return ("var", _path(parts[0], "{{ }}"), filters)


def _parse_tokens(tokens):
    root = []
    stack = [("root", root, None)]  # (tag, list being filled, node)
    for token in tokens:
        if not token:
            continue
        body = stack[-1][1]
        if token.startswith("{#"):
            continue
        if token.startswith("{{"):
            body.append(_var(token[2:-2]))
            continue
        if not token.startswith("{%"):
            body.append(("text", token))
            continue
        words = token[2:-2].split()
        tag = words[0] if words else ""
        if tag == "for":
            if len(words) != 4 or words[2] != "in":
                raise TemplateSyntaxError(f"expected {{% for x in items %}}, got {token}")
            node = ("for", _path(words[1], token)[0], _path(words[3], token), [])
            body.append(node)
            stack.append(("for", node[3], node))
        elif tag == "if":
            if len(words) != 2:
                raise TemplateSyntaxError(f"expected {{% if name %}}, got {token}")
            node = ("if", _path(words[1], token), [], [])
            body.append(node)
            stack.append(("if", node[2], node))
        elif tag == "else":
            if stack[-1][0] != "if":
                raise TemplateSyntaxError("{% else %} outside an {% if %}")
            stack[-1] = ("else", stack[-1][2][3], stack[-1][2])
        elif tag in ("endfor", "endif"):
            opened = stack[-1][0]
            if (tag == "endfor") != (opened == "for") or opened == "root":
                raise TemplateSyntaxError(f"{{% {tag} %}} does not close the open {{% {opened} %}}")
            stack.pop()
        else:
            raise TemplateSyntaxError(f"unknown tag {token}")
    if len(stack) > 1:
        raise TemplateSyntaxError(f"{{% {stack[-1][0]} %}} is never closed")
    return root


def parse(source):
    """The node list for `source` (cached: the same source parses once)."""
    nodes = _cache.get(source)
    if nodes is not None:
        _cache.move_to_end(source)
        return nodes
    nodes = _parse_tokens(_TOKEN.split(source))
    if CACHE_SIZE > 0:
        _cache[source] = nodes
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return nodes
