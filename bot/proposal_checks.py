"""The AST checks behind bot.proposal. Pure: no I/O, no imports of what it checks.

`risky_constructs` lists what could start a process, reach the network or run code built at
run time; `seed_masked` reduces a module to what does not merely feed a random seed.
Both see through import aliases (`import os as o`, `from os import system as s`).
"""

import ast
import fnmatch
import re

# Importing any of these (or a submodule) is refused unless the base already did.
RISKY_MODULES = frozenset({
    "subprocess", "socket", "ctypes", "importlib", "multiprocessing", "pty", "urllib", "http", "ftplib",
    "smtplib", "telnetlib", "ssl", "requests", "signal", "builtins", "socketserver", "xmlrpc", "poplib",
    "imaplib", "webbrowser", "posix", "nt", "_posixsubprocess", "_socket", "_ctypes", "_ssl", "_signal",
})
# Dotted names refused wherever they are referenced, called or not (`s = os.system` counts).
RISKY_NAMES = ("os.system", "os.popen", "os.exec*", "os.spawn*", "os.posix_spawn*", "os.fork*", "os.kill*",
               "os.setsid", "os.killpg", "os.startfile", "asyncio.create_subprocess_*", "sys.modules")
RISKY_BUILTINS = frozenset({"__import__", "eval", "exec", "compile", "__builtins__"})
_INTROSPECT = frozenset({"getattr", "vars"})  # getattr(os, "system") reaches what `os.system` does
_SENSITIVE = RISKY_MODULES | {"os", "sys", "__builtins__", "asyncio"}
_ESCAPES = frozenset({"__globals__", "__subclasses__", "__builtins__", "__import__", "__code__"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def import_aliases(tree):
    """{local name: dotted origin} for every import in the module."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if alias.name != "*":
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _bound(nodes):
    """Names a scope binds itself (assignments, defs, parameters), not those of nested scopes."""
    names, declared, stack = set(), set(), list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, _SCOPES):
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        stack.extend(ast.iter_child_nodes(node))
    return names - declared


def _dotted_key(dotted):
    """The allow key of a refused dotted reference, or None when it is harmless."""
    parts = dotted.split(".")
    if parts[0] in RISKY_MODULES or parts[0] in RISKY_BUILTINS:
        return parts[0]
    for end in range(2, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if any(fnmatch.fnmatchcase(prefix, pattern) for pattern in RISKY_NAMES):
            return prefix
    escapes = [part for part in parts[1:] if part in _ESCAPES]
    if escapes:
        return escapes[0]
    if parts[0] in _SENSITIVE and "__dict__" in parts:
        return parts[0] + ".__dict__"
    return None


def _proc_path(node):
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[0]
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and (node.value + "/").startswith("/proc/")


class _Scan:
    def __init__(self, tree):
        self.aliases = import_aliases(tree)
        self.found = []  # (line, key, source)
        copies = [n for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, (ast.Name, ast.Attribute))]
        for _ in range(3):  # `o = os` aliases like `import os as o`; a few hops: `p = o`
            for node in copies:
                dotted = self.resolve(node.value, ())
                if dotted and dotted.split(".")[0] in _SENSITIVE | RISKY_BUILTINS:
                    self.aliases.update((t.id, dotted) for t in node.targets if isinstance(t, ast.Name))

    def add(self, node, key):
        self.found.append((node.lineno, key, ast.unparse(node)[:80]))

    def resolve(self, node, scopes):
        """`o.system` → "os.system" after `import os as o`; None for a function's local (a
        parameter, say) that shadows a builtin: `def f(compile=True): return compile`."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        if node.id in self.aliases:
            root = self.aliases[node.id]
        elif node.id not in RISKY_BUILTINS and node.id not in _INTROSPECT:
            root = "<local>." + node.id  # neither imported nor a builtin: `requests = []` is no module
        elif any(node.id in s for s in scopes):
            return None
        else:
            root = node.id
        return ".".join([root] + parts[::-1])

    def visit(self, node, scopes):
        children = None  # None: all of them
        if isinstance(node, _SCOPES):
            # what a def evaluates where it stands: decorators, defaults, annotations, bases, first iterable
            outer = [*getattr(node, "decorator_list", ()), *getattr(node, "bases", ()), *getattr(node, "keywords", ())]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                args = node.args
                every = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
                outer += [d for d in args.defaults + args.kw_defaults if d]
                outer += [a.annotation for a in every if a.annotation] + [r for r in [getattr(node, "returns", None)] if r]
                bound = _bound([args, *(node.body if isinstance(node.body, list) else [node.body])])
            elif isinstance(node, ast.ClassDef):
                bound = set()  # a class body, like the module, reads a builtin before its own binding
            else:
                outer.append(node.generators[0].iter)
                bound = _bound([g.target for g in node.generators])
            for child in outer:
                self.visit(child, scopes)
            for child in ast.iter_child_nodes(node):  # outer parts once more: findings are deduplicated
                self.visit(child, scopes + (bound,))
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in RISKY_MODULES:
                    self.add(node, alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            for alias in node.names:
                if top in RISKY_MODULES:
                    key = top
                elif alias.name == "*":
                    key = f"{top}.*" if top in _SENSITIVE else None
                else:
                    key = _dotted_key(f"{node.module}.{alias.name}")
                if key:
                    self.add(node, key)
        elif isinstance(node, (ast.Attribute, ast.Name)):
            if isinstance(node, ast.Attribute) and node.attr in _ESCAPES:
                self.add(node, node.attr)
            if isinstance(node, ast.Attribute) or isinstance(node.ctx, ast.Load):
                dotted = self.resolve(node, scopes)
                key = dotted and _dotted_key(dotted)
                if key:
                    self.add(node, key)
                if dotted is not None:
                    return  # the chain is one reference: its inner names were judged with it
        elif isinstance(node, ast.Call):
            func = self.resolve(node.func, scopes)
            key = func and _dotted_key(func)
            if key:  # name the call, `os.system('ls')`, rather than `os.system` alone
                self.add(node, key)
                children = [*node.args, *node.keywords]
            if func in _INTROSPECT and node.args:
                target = self.resolve(node.args[0], scopes)
                if target and target.split(".")[0] in _SENSITIVE:
                    self.add(node, f"{func}({target.split('.')[0]})")
            if node.args and _proc_path(node.args[0]):
                self.add(node, "open(/proc)")
        elif isinstance(node, ast.Constant) and node.value in _ESCAPES:
            self.add(node, node.value)
        for child in ast.iter_child_nodes(node) if children is None else children:
            self.visit(child, scopes)


def risky_constructs(tree):
    """[(line, key, source)] in file order; `key` is what `allowed_calls` names to allow it."""
    scan = _Scan(tree)
    scan.visit(tree, ())  # module names shadow no builtin: `eval = eval` reads the builtin
    return sorted(set(scan.found))


def is_allowed(key, allowed_calls):
    """`subprocess` allows `subprocess`; `os` or `os.exec*` allows `os.execv`; `getattr` allows `getattr(os)`."""
    return any(key == name or fnmatch.fnmatchcase(key, name) or key.startswith((name + ".", name + "("))
               for name in allowed_calls)


# --- seeds ---------------------------------------------------------------------------------

_SEED_TOKEN = re.compile(r"(?:^|_)seeds?(?:_|$)", re.IGNORECASE)  # seed, SEED, manual_seed_all, set_seed
SEED_CALLS = frozenset({"default_rng", "RandomState", "Random", "SeedSequence", "PCG64", "PCG64DXSM", "MT19937",
                        "Philox", "SFC64"})


def _seedy(name):
    return bool(name) and bool(_SEED_TOKEN.search(name))


def _seed_string(node):
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and "seed" in node.value.lower()


class _Mask(ast.NodeTransformer):
    """Takes out what only feeds a seed: seeding calls' arguments, seeding statements, and the
    assignments, imports and defs of names used nowhere else."""

    def __init__(self, aliases, sinks, tainted):
        self.aliases, self.sinks, self.tainted = aliases, sinks, tainted

    def is_sink(self, func):
        if isinstance(func, ast.Name) and func.id in self.sinks:
            return True
        if isinstance(func, ast.Attribute):
            last = func.attr
        elif isinstance(func, ast.Name):
            last = self.aliases.get(func.id, func.id).split(".")[-1]
        else:
            return False
        return last in SEED_CALLS or _seedy(last)

    def seed_target(self, node):
        if isinstance(node, ast.Name):
            return node.id in self.tainted or node.id in self.sinks
        if isinstance(node, ast.Attribute):
            return _seedy(node.attr)
        if isinstance(node, ast.Subscript):
            return _seed_string(node.slice)
        if isinstance(node, (ast.Tuple, ast.List)):
            return bool(node.elts) and all(self.seed_target(e) for e in node.elts)
        return False

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Call) and self.is_sink(node.value.func):
            return None
        return self.generic_visit(node)

    def visit_Assign(self, node):
        if all(self.seed_target(t) for t in node.targets):
            return None
        target = node.targets[0]
        if (len(node.targets) == 1 and isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                and len(target.elts) == len(node.value.elts)):  # SEED, LR = 1, 0.1
            node.value.elts = [ast.Constant("<seed>") if self.seed_target(t) else v
                               for t, v in zip(target.elts, node.value.elts)]
        return self.generic_visit(node)

    def visit_AugAssign(self, node):
        return None if self.seed_target(node.target) else self.generic_visit(node)

    visit_AnnAssign = visit_AugAssign

    def visit_Import(self, node):
        node.names = [a for a in node.names if (a.asname or a.name.split(".")[0]) not in self.tainted]
        return node if node.names else None

    visit_ImportFrom = visit_Import

    def visit_FunctionDef(self, node):
        return None if node.name in self.tainted else self.generic_visit(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Call(self, node):
        if self.is_sink(node.func):
            node.args, node.keywords = [], []
        return self.generic_visit(node)

    def visit_keyword(self, node):
        if _seedy(node.arg):
            node.value = ast.Constant("<seed>")
        return self.generic_visit(node)

    def visit_Dict(self, node):
        node.values = [ast.Constant("<seed>") if _seed_string(k) else v for k, v in zip(node.keys, node.values)]
        return self.generic_visit(node)


def seed_masked(text, tree=None):
    """ast.dump of the module `text` without what only feeds a random seed: two versions of a
    module whose masked dumps are equal differ in seeds alone. `tree`, its AST if parsed already,
    is changed in place. SyntaxError if it does not parse."""
    tree = tree or ast.parse(text)
    nodes = list(ast.walk(tree))
    aliases = import_aliases(tree)
    probe, sinks = _Mask(aliases, set(), set()), set()
    refs = [n for n in nodes if isinstance(n, ast.Assign) and len(n.targets) == 1
            and isinstance(n.targets[0], ast.Name) and isinstance(n.value, (ast.Name, ast.Attribute))]
    while True:  # `ms = torch.manual_seed` makes `ms` a seeding call too
        found = {n.targets[0].id for n in refs if probe.is_sink(n.value)}
        if found <= sinks:
            break
        sinks |= found
        probe.sinks = sinks
    names = {n.id for n in nodes if isinstance(n, ast.Name)} | set(aliases)
    names |= {n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    loaded = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    tainted = {name for name in names if _seedy(name)}
    tainted |= {t.id for n in nodes if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                and probe.is_sink(n.value.func) for t in n.targets if isinstance(t, ast.Name)} - loaded
    while True:  # a name read only where a seed is made is a seed too: X = 42 ... manual_seed(X)
        masked = _Mask(aliases, sinks, tainted).visit(tree)
        still = {n.id for n in ast.walk(masked) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        grown = tainted | (loaded - still)
        if grown == tainted:
            return ast.dump(masked)
        tainted, tree = grown, ast.parse(text)  # the mask changed the tree in place: start afresh
