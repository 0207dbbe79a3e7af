"""A small stand-in for the Actions runner, enough to run the shipped workflows' own `run:` lines.

What it does as GitHub does: picks the jobs an event starts, follows `uses: ./.github/workflows/X`
into the called workflow with its `with:` and `secrets:` evaluated in the caller, evaluates `if:`,
resolves `${{ }}` in step `env:` (inputs, secrets, github.token, github.event), and runs each `run:`
with `bash -e` and the runner's variables (GITHUB_EVENT_PATH, GITHUB_STEP_SUMMARY, RUNNER_TEMP...).

What it does not: `uses:` steps (actions/checkout, setup-python: the test's clone and interpreter
stand in for them) and the `Install` step (a `bot` on PATH that runs this worktree's `python -m
bot` stands in for the installed bot). Expressions: the operators and functions the shipped
workflows use (||, &&, ==, !=, !, startsWith), nothing more.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
STANDIN = Path(__file__).resolve().parent / "modal_standin"


def load(path):
    data = yaml.safe_load(Path(path).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


class _V:
    """A value in an expression: missing properties are null, as in GitHub's expressions."""

    def __init__(self, value):
        self.value = value.value if isinstance(value, _V) else value

    def __getattr__(self, name):
        name = name.replace("__dash__", "-")
        return _V(self.value.get(name) if isinstance(self.value, dict) else None)

    def __bool__(self):
        return bool(self.value) and self.value not in (0, "")

    def __eq__(self, other):
        return self.value == (other.value if isinstance(other, _V) else other)

    def __ne__(self, other):
        return not self == other


def _starts_with(a, b):
    a, b = _V(a).value, _V(b).value
    return isinstance(a, str) and isinstance(b, str) and a.lower().startswith(b.lower())


def evaluate(expression, context):
    """One expression (without `${{ }}`) against {inputs, secrets, github}."""
    out, i = [], 0
    for token in re.findall(r"'(?:[^']|'')*'|&&|\|\||==|!=|!|[A-Za-z_][\w.\-]*|\d+(?:\.\d+)?|[(),]|\s+", expression):
        if token.startswith("'"):
            out.append(repr(token[1:-1].replace("''", "'")))
        elif token in ("&&", "||"):
            out.append({"&&": " and ", "||": " or "}[token])
        elif token == "!":
            out.append(" not ")
        elif token == "startsWith":
            out.append("_starts_with")
        elif token in ("true", "false", "null"):
            out.append({"true": "True", "false": "False", "null": "None"}[token])
        elif re.match(r"[A-Za-z_]", token):
            head, *rest = token.split(".")
            out.append(f"_V(_ctx[{head!r}])" + "".join(f".{p.replace('-', '__dash__')}" for p in rest))
        else:
            out.append(token)
        i += len(token)
    assert i == len(expression), f"unsupported expression: {expression!r}"
    value = eval("".join(out), {"_V": _V, "_ctx": context, "_starts_with": _starts_with})  # noqa: S307 - test input
    return value.value if isinstance(value, _V) else value


def substitute(value, context):
    """A `with:`/`env:` value: a whole `${{ }}` keeps its type; embedded ones become text."""
    if not isinstance(value, str):
        return value
    whole = re.fullmatch(r"\$\{\{(.*)\}\}", value.strip(), re.S)
    if whole:
        return evaluate(whole.group(1).strip(), context)
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1).strip(), context) or ""), value)


def jobs_for(workflow_file, event_name, event, inputs=None, secrets=None, token="job-token"):
    """[(job name, job, context)] of the jobs this event runs, reusable workflows followed."""
    workflow = load(workflow_file)
    assert event_name in workflow["on"], f"{workflow_file} does not run on {event_name}"
    trigger = workflow["on"][event_name] if isinstance(workflow["on"], dict) else None
    declared = (trigger.get("inputs") or {}) if isinstance(trigger, dict) else {}
    given = dict(inputs or {})
    unknown = set(given) - set(declared)
    assert not unknown, f"{workflow_file} declares no input {sorted(unknown)} (GitHub answers 422)"
    for name, spec in declared.items():
        given.setdefault(name, spec.get("default"))
        if spec.get("type") == "choice":
            assert given[name] in spec["options"], (name, given[name])
    context = {"inputs": given if event_name == "workflow_dispatch" else {},
               "secrets": {"GITHUB_TOKEN": token, **(secrets or {})},  # GitHub always provides this one
               "github": {"token": token, "event": event, "event_name": event_name}}
    return _expand(workflow, context)


def _expand(workflow, context):
    selected = []
    for name, job in workflow["jobs"].items():
        if "if" in job and not evaluate(str(job["if"]).removeprefix("${{").removesuffix("}}").strip(), context):
            continue
        if "uses" in job:
            path = job["uses"].split("#")[0].strip()
            assert path.startswith("./.github/workflows/"), path
            called = load(ROOT / path)
            spec = called["on"]["workflow_call"]
            with_values = {k: substitute(v, context) for k, v in (job.get("with") or {}).items()}
            assert set(with_values) <= set(spec.get("inputs") or {}), (path, sorted(with_values))
            typed = {}
            for key, declared in (spec.get("inputs") or {}).items():
                value = with_values.get(key, declared.get("default"))
                assert value is not None or not declared.get("required"), f"{path}: input {key} is required"
                kind = {"number": (int, float), "string": str, "boolean": bool}[declared["type"]]
                assert value is None or isinstance(value, kind), f"{path}: input {key}={value!r} is not a {declared['type']}"
                typed[key] = value
            passed = {k: substitute(v, context) for k, v in (job.get("secrets") or {}).items()}
            assert job.get("secrets") != "inherit"
            assert set(passed) <= set(spec.get("secrets") or {}), (path, sorted(passed))
            inner = dict(context, inputs=typed, secrets={"GITHUB_TOKEN": context["secrets"]["GITHUB_TOKEN"],
                                                         **{k: v for k, v in passed.items() if v}})
            selected += _expand(called, inner)
        else:
            selected.append((name, job, context))
    return selected


def bot_shims(directory):
    """`bot` runs this worktree's code; `modal` records its arguments (no Modal to deploy to)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # `bot run` reads no variable for its write pacing (8 a minute, ~7 s a write); `bot command`
    # and `bot drain` read AUTORESEARCH_WRITES_PER_MINUTE, and the shim hands it to `bot run` too.
    (directory / "bot").write_text(
        '#!/bin/sh\n'
        'if [ "$1" = run ] && [ -n "$AUTORESEARCH_WRITES_PER_MINUTE" ]; then\n'
        f'  shift; exec "{sys.executable}" -m bot run --writes-per-minute "$AUTORESEARCH_WRITES_PER_MINUTE" "$@"\n'
        'fi\n'
        f'exec "{sys.executable}" -m bot "$@"\n')
    (directory / "modal").write_text('#!/bin/sh\necho "$@" >> "$MODAL_STANDIN_ROOT/modal-cli.log"\n')
    for name in ("bot", "modal"):
        (directory / name).chmod(0o755)
    return directory


def run_job(job, context, cwd, base_env, skip=("Install",), timeout=300):
    """Run the job's `run:` steps in order, as the runner does (a failed step stops the job unless
    a later step has `if: always()`). Returns [(step name, CompletedProcess)]."""
    results, failed = [], False
    for step in job["steps"]:
        if "uses" in step or step.get("name") in skip:
            continue
        condition = str(step.get("if", "success()"))
        if failed and "always()" not in condition:
            continue
        env = dict(base_env)
        env.update({k: str(substitute(v, context) or "") for k, v in (step.get("env") or {}).items()})
        run = substitute(step["run"], context)  # the shipped lines keep ${{ }} out of run:, this is a no-op
        done = subprocess.run(["bash", "-e", "-c", run], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
        results.append((step.get("name"), done))
        failed = failed or done.returncode != 0
    return results


def runner_env(world, tmp_path, event_path, shims, extra=None):
    """The variables a runner sets, with the loopback GitHub's URL; nothing of this machine's
    MODAL_*/AUTORESEARCH_*/GITHUB_* leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAL_", "AUTORESEARCH_", "GITHUB_"))}
    temp = Path(tmp_path) / "runner-temp"
    temp.mkdir(exist_ok=True)
    (Path(tmp_path) / "home").mkdir(exist_ok=True)
    env.update(HOME=str(Path(tmp_path) / "home"), GITHUB_WORKSPACE=str(world.work), RUNNER_TEMP=str(temp),
               GITHUB_EVENT_PATH=str(event_path), GITHUB_STEP_SUMMARY=str(temp / "step-summary.md"),
               GITHUB_API_URL=world.url, GITHUB_REPOSITORY="octo/night", GITHUB_SERVER_URL="https://github.example",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(STANDIN)]),
               PATH=os.pathsep.join([str(shims), str(Path(sys.executable).parent), env.get("PATH", "")]))
    env.update(extra or {})
    return env


def write_event(tmp_path, event, name="event.json"):
    path = Path(tmp_path) / name
    path.write_text(json.dumps(event))
    return path
