"""`bot init`: recognise the repository's layout and write an autoresearch.yaml that works for it.
Pure: file texts in, settings text and next steps out (the CLI reads and writes the files).

Layouts:
  autoresearch-bot   this project's harness (prepare.py reads AUTORESEARCH_* and evaluates the
                     handed-over graph): the defaults, a verified metric.
  autoresearch fork  karpathy/autoresearch's train.py + prepare.py, unmodified: its prepare.py
                     fixes TIME_BUDGET, reads no variable of ours and writes no result file, so the
                     printed val_bpb is read (trust mode) with the fork's own budget; its data lives
                     in ~/.cache/autoresearch, readable by the experiments; its train.py needs CUDA
                     and its packages.
  benchmark          no train.py: a template naming what to fill in (command, metric, editable).
"""

import dataclasses
import re

AR_CACHE = "~/.cache/autoresearch"


@dataclasses.dataclass(frozen=True)
class Layout:
    kind: str
    settings: str  # the autoresearch.yaml text
    steps: tuple  # what to do before `bot run`, in order


def detect(files):
    """The layout of a repository given {path: text} of its top-level files (missing ones absent)."""
    train, prepare = files.get("train.py"), files.get("prepare.py")
    if train is not None and prepare is not None and "AUTORESEARCH_BUDGET_SECONDS" in prepare:
        return _bot_layout()
    if train is not None and prepare is not None:
        return _fork_layout(train, prepare, files.get("pyproject.toml") or "", "uv.lock" in files)
    return _benchmark_layout(sorted(p for p in files if p.endswith(".py")))


def _bot_layout():
    text = _header("this project's layout: the harness (prepare.py) measures val_bpb itself") + """\
editable: [train.py]         # the files experiments may change
harness: [prepare.py]        # frozen; it evaluates the handed-over model on the validation split
command: python train.py
metric: val_bpb
direction: minimize
budget_seconds: 300          # `bot run --local --budget 15` for a CPU demo
runner: modal                # `bot run --local` trains on this machine instead
proposer: offline            # anthropic: Claude proposes (needs ANTHROPIC_API_KEY)
"""
    return Layout("autoresearch-bot", text, ("bot run --local --iterations 3 --budget 15   # a CPU demo",
                                             "bot run --hours 8                             # a night on Modal"))


def _fork_layout(train, prepare, pyproject, has_uv_lock):
    budget = _int_constant(prepare, "TIME_BUDGET") or 300
    timeout = budget + max(300, budget)  # compile and evaluation come on top of the training budget
    cuda_only = "cuda" in train and "is_available()" not in train
    packages = dependencies(pyproject)
    text = _header("a karpathy/autoresearch fork, unmodified") + f"""\
editable: [train.py]         # prepare.py stays as it is (experiments cannot change it)
harness: []                  # trust mode: its prepare.py writes no result file for the bot, so the
                             # val_bpb train.py prints is read; every report says so
command: python train.py     # in the bot's Python: install the fork's packages there (README)
metric: val_bpb
direction: minimize
budget_seconds: {budget}          # its prepare.py fixes TIME_BUDGET = {budget}; --budget cannot change it
timeout_seconds: {timeout}         # the budget + compile and evaluation; a run past this is killed
readable: ["{AR_CACHE}"]    # its data and tokenizer (`prepare.py` downloads them once), read-only
runner: local                # this machine{": its train.py needs an NVIDIA GPU" if cuda_only else ""} (its data in ~ cannot reach Modal yet)
proposer: offline            # anthropic: Claude proposes (needs ANTHROPIC_API_KEY)
"""
    install = "pip install " + " ".join(packages) if packages else "pip install -r requirements of the fork"
    steps = [f"{install}   # the fork's packages, into the bot's Python",
             ("uv run prepare.py" if has_uv_lock else "python prepare.py")
             + f"   # once: downloads the data and trains the tokenizer into {AR_CACHE}",
             "bot run --iterations 1" + ("   # on a machine with an NVIDIA GPU" if cuda_only else "")]
    return Layout("autoresearch fork", text, tuple(steps))


def _benchmark_layout(python_files):
    guess = next((p for p in python_files if p.startswith(("bench", "benchmark"))), None)
    text = _header("no train.py: a benchmark repository (fill in the TODOs)") + f"""\
editable: [TODO.py]          # TODO: the files experiments may change
harness: []                  # the command's output is the measurement (trust mode)
command: python {guess or "TODO.py"}{" " * max(1, 13 - len(guess or "TODO.py"))}# TODO: what one experiment runs
metric: {{name: TODO, regex: '^TODO: ([0-9.]+)$'}}   # TODO: the number it prints
direction: minimize
# gate: python -m pytest -q  # a command that must pass before the metric counts
budget_seconds: 60
runner: local
proposer: offline
"""
    return Layout("benchmark", text, ("edit autoresearch.yaml: every TODO", "bot run --local --iterations 3"))


def _header(what):
    return (f"# autoresearch-bot settings, written by `bot init` for {what}.\n"
            "# Every key is optional; `bot run --help` and the README's Settings table list them all.\n\n"
            "tag: default                 # branches autoresearch/<tag>, autoresearch/<tag>-exp/NNNN\n")


def _int_constant(source, name):
    match = re.search(rf"^{name}\s*=\s*(\d+)\b", source, re.M)
    return int(match.group(1)) if match else None


def dependencies(pyproject):
    """The `dependencies = [...]` list of a pyproject.toml, as pip arguments (no toml parser needed)."""
    block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", pyproject, re.M | re.S)
    if not block:
        return []
    return [f"'{item}'" if any(c in item for c in "<>=!~") else item
            for item in re.findall(r"[\"']([^\"']+)[\"']", block.group(1))]
