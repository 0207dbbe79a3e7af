"""bot.proposal, hardened: path globs that stay within a segment, a size limit on proposed
files, no newly introduced process/network/dynamic-code constructs unless allowed, and the
real train.py and example files still accept an ordinary change."""

import ast
import inspect
import re
from pathlib import Path

import pytest
import yaml

from bot.errors import ProposalError
from bot.proposal import MAX_FILE_BYTES, Proposal, is_editable, validate

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE_TEXT = "import os\nimport sys\nimport torch\n\nLR = 0.04\nWIDTH = 64\nprint(LR * WIDTH)\n"
BASE = {"train.py": BASE_TEXT}
EDITABLE = ("train.py",)
HARNESS = ("prepare.py",)


def proposal(files, description="a change"):
    return Proposal(description=description, rationale="because", files=files)


def with_lines(snippet, base=BASE_TEXT):
    """The base with a real change (LR) and `snippet` appended: only the snippet can be refused."""
    return {"train.py": base.replace("LR = 0.04", "LR = 0.05") + snippet + "\n"}


# --- 1. editable globs ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "path, pattern, expected",
    [
        ("x.py", "*.py", True),
        ("sub/dir/x.py", "*.py", False),
        (".github/../x.py", "*.py", False),
        ("a.b.py", "*.py", True),
        ("x.py.bak", "*.py", False),
        (".hidden.py", "*.py", True),
        ("a.py", "**/*.py", True),
        ("a/b/c.py", "**/*.py", True),
        ("a/b/c.txt", "**/*.py", False),
        ("templite/x.py", "templite/*.py", True),
        ("templite/sub/x.py", "templite/*.py", False),
        ("templite/x.py", "templite/**/*.py", True),
        ("templite/sub/deep/x.py", "templite/**/*.py", True),
        ("other/x.py", "templite/**/*.py", False),
        ("templite/a/b", "templite/**", True),
        ("templite", "templite/**", False),
        ("a/b/c", "**", True),
        ("src/x.py", "src/**/x.py", True),
        ("x.py", "?.py", True),
        ("a/x.py", "a?x.py", False),
        ("model1.py", "model[0-9].py", True),
        ("modelx.py", "model[0-9].py", False),
        ("modelx.py", "model[!0-9].py", True),
        ("model1.py", "model[!0-9].py", False),
        ("a/b.py", "a[!x]b.py", False),
        ("a/b.py", "a[--0]b.py", False),
        ("]x.py", "[]]x.py", True),
        ("x[.py", "x[.py", True),
        ("x.py", "./x.py", True),
        ("./x.py", "*.py", False),
        ("/etc/x.py", "**/*.py", False),
        ("a//b.py", "**/*.py", False),
        ("../x.py", "**/*.py", False),
        ("Train.py", "train.py", False),
    ],
    ids=["star", "star-not-across-slash", "star-not-through-dotdot", "star-dots", "star-not-suffix",
         "star-hidden", "globstar-zero-dirs", "globstar-many-dirs", "globstar-extension", "dir-star",
         "dir-star-not-deeper", "dir-globstar-zero", "dir-globstar-deep", "dir-globstar-other-dir",
         "trailing-globstar", "trailing-globstar-not-the-dir", "globstar-alone", "globstar-middle-zero",
         "question", "question-not-slash", "class", "class-miss", "negated-class", "negated-class-miss",
         "negated-class-not-slash", "range-not-slash", "class-literal-bracket", "unclosed-bracket-literal",
         "pattern-dot-slash", "path-dot-slash", "absolute-path", "empty-segment", "dotdot-path", "case"],
)
def test_is_editable_globs(path, pattern, expected):
    assert is_editable(path, [pattern]) is expected


@pytest.mark.parametrize(
    "path, editable",
    [("sub/dir/x.py", ("*.py",)), ("templite/sub/x.py", ("templite/*.py",)), ("a/b.py", ("a?b.py",))],
    ids=["star", "dir-star", "question"],
)
def test_validate_refuses_a_path_a_glob_reaches_only_across_a_slash(path, editable):
    with pytest.raises(ProposalError, match=f"{path} is not editable; proposals may edit only"):
        validate(proposal({path: "x = 1\n"}), {}, editable, HARNESS)


# --- 2. size limit -------------------------------------------------------------------------

def test_the_default_size_limit_is_a_megabyte():
    params = inspect.signature(validate).parameters
    assert MAX_FILE_BYTES == 1_000_000 == params["max_file_bytes"].default
    assert params["max_file_bytes"].kind is inspect.Parameter.KEYWORD_ONLY
    big = BASE_TEXT + "#" * (1_000_001 - len(BASE_TEXT) - 1) + "\n"
    assert len(big.encode()) == 1_000_001
    with pytest.raises(ProposalError) as caught:
        validate(proposal({"train.py": big}), BASE, EDITABLE, HARNESS)
    assert "train.py is 1000001 bytes, over the limit of 1000000 bytes" in str(caught.value)
    assert "`max_file_bytes` in autoresearch.yaml" in str(caught.value)


@pytest.mark.parametrize(
    "text, limit, refused",
    [
        ("x = 1\n" + "# " + "a" * 90 + "\n", 99, False),
        ("x = 1\n" + "# " + "a" * 91 + "\n", 99, True),
        ("x = 1\n" + "# " + "é" * 45 + "\n", 99, False),  # 45 characters, 90 bytes
        ("x = 1\n" + "# " + "é" * 46 + "\n", 99, True),  # 46 characters, 92 bytes: UTF-8 counts
        ("x = 1\n" + "# " + "a" * 10_000 + "\n", 1_000_000, False),
    ],
    ids=["at-limit", "one-over", "multibyte-under", "multibyte-over", "default-order"],
)
def test_validate_size_limit(text, limit, refused):
    size = len(text.encode("utf-8"))
    files = {"model.py": text}
    if refused:
        with pytest.raises(ProposalError) as caught:
            validate(proposal(files), {}, ("model.py",), HARNESS, max_file_bytes=limit)
        for part in (f"model.py is {size} bytes", f"limit of {limit} bytes", "max_file_bytes", "autoresearch.yaml"):
            assert part in str(caught.value)
    else:
        assert validate(proposal(files), {}, ("model.py",), HARNESS, max_file_bytes=limit)


def test_an_unchanged_large_file_does_not_count_against_the_limit():
    base = {"train.py": BASE_TEXT, "data.py": "# " + "a" * 200 + "\n"}
    files = {"train.py": BASE_TEXT.replace("LR = 0.04", "LR = 0.05"), "data.py": base["data.py"]}
    assert validate(proposal(files), base, ("*.py",), HARNESS, max_file_bytes=100)


def test_a_lone_surrogate_is_refused_before_it_reaches_git():
    with pytest.raises(ProposalError, match="not valid Unicode \\(lone surrogates\\): send UTF-8 text"):
        validate(proposal({"train.py": BASE_TEXT + "# \ud800\n"}), BASE, EDITABLE, HARNESS)


# --- 3. process, network and dynamic-code constructs ----------------------------------------

RISKY = [
    ("import subprocess", "subprocess"),
    ("import subprocess as sp", "subprocess"),
    ("from subprocess import run", "subprocess"),
    ("import socket", "socket"),
    ("import ctypes", "ctypes"),
    ("import importlib", "importlib"),
    ("from importlib import import_module", "importlib"),
    ("import multiprocessing", "multiprocessing"),
    ("import pty", "pty"),
    ("import urllib.request", "urllib"),
    ("from http.client import HTTPConnection", "http"),
    ("import ftplib", "ftplib"),
    ("import smtplib", "smtplib"),
    ("import ssl", "ssl"),
    ("import signal", "signal"),
    ("__import__('os')", "__import__"),
    ("eval('1 + 1')", "eval"),
    ("exec('x = 1')", "exec"),
    ("code = compile('1', 'f', 'eval')", "compile"),
    ("os.system('ls')", "os.system"),
    ("os.popen('ls')", "os.popen"),
    ("os.execv('/bin/sh', ['sh'])", "os.execv"),
    ("os.spawnl(os.P_WAIT, '/bin/true', 'true')", "os.spawnl"),
    ("os.posix_spawn('/bin/true', ['true'], {})", "os.posix_spawn"),
    ("os.fork()", "os.fork"),
    ("os.forkpty()", "os.forkpty"),
    ("os.kill(1, 9)", "os.kill"),
    ("os.killpg(1, 9)", "os.killpg"),
    ("os.setsid()", "os.setsid"),
    ("getattr(os, 'system')('ls')", "getattr(os)"),
    ("getattr(__builtins__, 'eval')('1')", "getattr(__builtins__)"),
    ("import builtins\nbuiltins.eval('1')", "builtins"),
    ("sys.modules['os'].system('ls')", "sys.modules"),
    ("open('/proc/self/environ').read()", "open(/proc)"),
    ("open(f'/proc/{os.getpid()}/cmdline').read()", "open(/proc)"),
    # simple evasion
    ("from os import system as s\ns('ls')", "os.system"),
    ("import os as o\no.system('ls')", "os.system"),
    ("run = os.system\nrun('ls')", "os.system"),
    ("__builtins__.__dict__['eval']('1')", "__builtins__"),
    ("e = eval", "eval"),
    ("from os import *", "os.*"),
    ("vars(os)['system']('ls')", "vars(os)"),
    ("os.__dict__['system']('ls')", "os.__dict__"),
    ("().__class__.__bases__[0].__subclasses__()", "__subclasses__"),
    ("f = lambda: 0\nf.__globals__['x']", "__globals__"),
    ("globals()['__builtins__']", "__builtins__"),
    ("def f(x=eval):\n    return x", "eval"),
    ("def f(exec):\n    return exec\nexec('x = 1')", "exec"),
    ("xs = [eval for _ in range(1)]", "eval"),
    ("eval = eval\neval('1')", "eval"),
    ("class Box:\n    run = exec", "exec"),
    ("xs = [e for e in [eval]]", "eval"),
    ("import asyncio\nasyncio.create_subprocess_exec('ls')", "asyncio.create_subprocess_exec"),
    ("import posix\nposix.system('ls')", "posix"),
    ("o = os\no.system('ls')", "os.system"),
    ("o = os\np = o\np.popen('ls')", "os.popen"),
    ("b = __builtins__", "__builtins__"),
]


@pytest.mark.parametrize("snippet, key", RISKY, ids=[f"{key}:{snippet.splitlines()[-1][:28]}" for snippet, key in RISKY])
def test_risky_constructs_are_refused_unless_allowed(snippet, key):
    files = with_lines(snippet)
    with pytest.raises(ProposalError) as caught:
        validate(proposal(files), BASE, EDITABLE, HARNESS)
    message = str(caught.value)
    assert message.startswith("train.py, line ") and f"uses {key}" in message
    assert "in autoresearch.yaml with `allowed_calls: [" in message
    allowed = message.split("allowed_calls: [")[1].rstrip("]`").split(", ")
    assert key in allowed
    assert validate(proposal(files), BASE, EDITABLE, HARNESS, allowed_calls=allowed)


def test_the_refusal_names_the_file_line_and_construct():
    text = BASE_TEXT.replace("LR = 0.04", "LR = 0.05") + "import subprocess\nsubprocess.run(['ls'])\n"
    with pytest.raises(ProposalError) as caught:
        validate(proposal({"train.py": text}), BASE, EDITABLE, HARNESS)
    assert str(caught.value) == (
        "train.py, line 8: `import subprocess` uses subprocess: experiments may not newly start processes, "
        "reach the network or run code built at run time. Remove it, or allow it in autoresearch.yaml with "
        "`allowed_calls: [subprocess]`"
    )


def test_several_constructs_are_named_together_and_allowing_one_leaves_the_other():
    files = with_lines("import subprocess\nos.system('ls')")
    with pytest.raises(ProposalError, match=r"allowed_calls: \[subprocess, os.system\]"):
        validate(proposal(files), BASE, EDITABLE, HARNESS)
    with pytest.raises(ProposalError) as caught:
        validate(proposal(files), BASE, EDITABLE, HARNESS, allowed_calls=["subprocess"])
    assert "line 9: `os.system('ls')` uses os.system" in str(caught.value)
    assert "allowed_calls: [os.system]" in str(caught.value) and "subprocess" not in str(caught.value)


@pytest.mark.parametrize(
    "snippet, allowed",
    [
        ("import subprocess\nsubprocess.run(['ls'])", ["subprocess"]),
        ("os.execv('/bin/sh', ['sh'])", ["os.exec*"]),
        ("os.system('ls')\nos.kill(1, 9)", ["os"]),
        ("getattr(os, 'system')", ["getattr"]),
        ("open('/proc/self/status').read()", ["open(/proc)"]),
        ("eval('1')", ("eval",)),
    ],
    ids=["module", "wildcard", "module-prefix", "getattr-any", "proc", "tuple"],
)
def test_allowed_calls_forms(snippet, allowed):
    files = with_lines(snippet)
    with pytest.raises(ProposalError):
        validate(proposal(files), BASE, EDITABLE, HARNESS)
    assert validate(proposal(files), BASE, EDITABLE, HARNESS, allowed_calls=allowed)


@pytest.mark.parametrize(
    "snippet",
    [
        "model = torch.nn.Linear(2, 2)\nmodel.eval()",
        "model = torch.compile(torch.nn.Linear(2, 2))",
        "import re\nPATTERN = re.compile('x+')",
        "def build(compile=True):\n    return compile",
        "def step(eval=False):\n    return 1 if eval else 0",
        "dtype = getattr(torch, 'float32')",
        "import shutil\nshutil.rmtree('/tmp/nothing', ignore_errors=True)",
        "with open('log.txt', 'w') as handle:\n    handle.write('x')",
        "print(os.environ.get('HOME'), os.cpu_count(), os.path.join('a', 'b'), os.getpid())",
        "import math, time, json, collections",
        "name = 'eval'",
        "sys.stdout.flush()",
        "print('/proc is where Linux keeps process facts')",
        "requests = []\nrequests.append(1)",
        "def serve(socket):\n    return socket.fileno()",
    ],
    ids=["model-eval", "torch-compile", "re-compile", "param-named-compile", "param-named-eval",
         "getattr-torch", "shutil", "open-a-file", "os-harmless", "stdlib", "string-eval", "sys-stdout",
         "proc-in-a-message", "variable-named-like-a-module", "parameter-named-like-a-module"],
)
def test_harmless_code_is_accepted(snippet):
    assert validate(proposal(with_lines(snippet)), BASE, EDITABLE, HARNESS)


@pytest.mark.parametrize(
    "base_snippet, snippet, refused",
    [
        ("import subprocess\nsubprocess.run(['nvidia-smi'])", "subprocess.run(['ls'])", False),
        ("os.system('nvidia-smi')", "os.system('ls')", False),
        ("os.system('nvidia-smi')", "os.popen('ls')", True),
        ("import subprocess as sp", "import subprocess", False),
        ("x = eval('1')", "y = eval('2')", False),
    ],
    ids=["import-already-there", "call-already-there", "other-call", "module-already-there", "eval-already-there"],
)
def test_a_construct_the_base_already_uses_stays_allowed(base_snippet, snippet, refused):
    base_text = BASE_TEXT + base_snippet + "\n"
    files = with_lines(snippet, base=base_text)
    if refused:
        with pytest.raises(ProposalError, match="allowed_calls"):
            validate(proposal(files), {"train.py": base_text}, EDITABLE, HARNESS)
    else:
        assert validate(proposal(files), {"train.py": base_text}, EDITABLE, HARNESS)


def test_risky_constructs_in_a_new_file_and_not_in_text_files():
    with pytest.raises(ProposalError, match="src/net.py, line 1: `import socket` uses socket"):
        validate(proposal({"src/net.py": "import socket\n"}), {}, ("src/*.py",), HARNESS)
    notes = {"program.md": "# notes\nimport subprocess; os.system('ls')\n"}
    assert validate(proposal(notes), {"program.md": "# notes\n"}, ("*.md",), HARNESS)


def test_a_third_party_risky_import_needs_both_settings():
    files = with_lines("import requests")
    with pytest.raises(ProposalError, match="imports requests, which the training box may not have"):
        validate(proposal(files), BASE, EDITABLE, HARNESS)
    with pytest.raises(ProposalError, match=r"allowed_calls: \[requests\]"):
        validate(proposal(files), BASE, EDITABLE, HARNESS, allowed_imports={"requests"})
    assert validate(proposal(files), BASE, EDITABLE, HARNESS, allowed_imports={"requests"},
                    allowed_calls=["requests"])


def test_validate_keyword_arguments():
    params = inspect.signature(validate).parameters
    assert list(params) == ["proposal", "base_files", "editable", "harness", "tried_hashes", "allowed_imports",
                            "max_file_bytes", "allowed_calls"]
    assert params["allowed_calls"].default == () and params["allowed_calls"].kind is inspect.Parameter.KEYWORD_ONLY


def test_absurd_nesting_is_a_proposal_error():
    deep = "x = " + "(" * 300 + "1" + ")" * 300 + "\n"
    with pytest.raises(ProposalError, match="train.py no longer parses"):
        validate(proposal({"train.py": deep}), BASE, EDITABLE, HARNESS)
    with pytest.raises(ProposalError, match="null|parse"):
        validate(proposal({"train.py": "x = 1\0\n"}), BASE, EDITABLE, HARNESS)


# --- the real files ------------------------------------------------------------------------

def test_the_real_train_py_accepts_a_constant_change():
    text = (REPO_ROOT / "train.py").read_text()
    new, count = re.subn(r"\nLEARNING_RATE = \S+", "\nLEARNING_RATE = 2e-3", text, count=1)
    assert count == 1 and new != text
    assert validate(proposal({"train.py": new}), {"train.py": text}, EDITABLE, HARNESS)


def _first_number(text):
    """Position of the first int/float literal on one line, or None."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.lineno == node.end_lineno:
            return node
    return None


def _trivial_change(text):
    number = _first_number(text)
    if number is None:
        return "# an experiment\n" + text + "\nEXPERIMENT_MARK = 1\n"
    lines = text.splitlines(keepends=True)
    line = lines[number.lineno - 1]
    lines[number.lineno - 1] = line[:number.col_offset] + repr(number.value + 1) + line[number.end_col_offset:]
    return "# an experiment\n" + "".join(lines)


EXAMPLES = sorted(p.parent.name for p in (REPO_ROOT / "examples").glob("*/autoresearch.yaml"))


@pytest.mark.parametrize("example", EXAMPLES)
def test_each_example_accepts_a_trivial_change_to_each_editable_file(example):
    root = REPO_ROOT / "examples" / example
    config = yaml.safe_load((root / "autoresearch.yaml").read_text())
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                   and "__pycache__" not in p.parts)
    editable = [f for f in files if is_editable(f, config["editable"])]
    for pattern in config["editable"]:
        assert any(is_editable(f, [pattern]) for f in editable), f"{example}: {pattern} matches no file"
    assert not set(editable) & set(config.get("harness", ()))
    for path in editable:
        text = (root / path).read_text()
        new = _trivial_change(text)
        assert new != text
        assert validate(proposal({path: new}), {path: text}, config["editable"], config.get("harness", ())), path
