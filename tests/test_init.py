"""`bot init` and crash hints: a karpathy/autoresearch-layout fork gets settings that work, and
a fork that cannot run here says why (a missing package, no CUDA) instead of "fix train.py".

The forks are stand-ins in autoresearch's layout (prepare.py fixes TIME_BUDGET and reads none of
the bot's variables; train.py imports from it and prints the `---` summary); nothing of the
real repository is copied."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import cli
from bot.config import parse_config
from bot.hints import crash_hint
from bot.init import detect
from conftest import make_repo

ROOT = Path(__file__).resolve().parent.parent

FORK_PREPARE = '''"""Stand-in of an autoresearch prepare.py: constants, data in ~/.cache/autoresearch."""
import os
TIME_BUDGET = {budget}
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "autoresearch")

def read_data():
    with open(os.path.join(CACHE_DIR, "data", "tokens.txt")) as f:
        return f.read()

if __name__ == "__main__":
    os.makedirs(os.path.join(CACHE_DIR, "data"), exist_ok=True)
    with open(os.path.join(CACHE_DIR, "data", "tokens.txt"), "w") as f:
        f.write("abc" * 100)
'''

FORK_TRAIN_CPU = '''import time
from prepare import TIME_BUDGET, read_data
LEARNING_RATE = 0.5
data = read_data()
start = time.time()
time.sleep(min(TIME_BUDGET, 0.2))
print("---")
print(f"val_bpb:          {1.0 + abs(LEARNING_RATE - 0.3) + len(data) * 1e-6:.6f}")
print(f"training_seconds: {time.time() - start:.1f}")
'''

FORK_TRAIN_CUDA = '''import torch
cap = torch.cuda.get_device_capability()
print("---")
print("val_bpb: 1.0")
'''

FORK_TRAIN_KERNELS = '''import torch
from kernels import get_kernel
print("---")
print("val_bpb: 1.0")
'''

FORK_PYPROJECT = '''[project]
name = "autoresearch"
dependencies = [
    "kernels>=0.11.7",
    "numpy>=2.2.6",
    "torch==2.9.1",
]
'''


def fork_files(train, budget=300):
    return {"train.py": train, "prepare.py": FORK_PREPARE.format(budget=budget), "pyproject.toml": FORK_PYPROJECT,
            "program.md": "research\n"}


@pytest.mark.parametrize("files, kind, expect", [
    ({"train.py": (ROOT / "train.py").read_text(), "prepare.py": (ROOT / "prepare.py").read_text()},
     "autoresearch-bot", {"harness": ("prepare.py",), "runner": "modal", "budget_seconds": 300.0}),
    (fork_files(FORK_TRAIN_CUDA), "autoresearch fork",
     {"harness": (), "budget_seconds": 300.0, "timeout_seconds": 600.0, "runner": "local",
      "readable": ("~/.cache/autoresearch",), "editable": ("train.py",)}),
    (fork_files(FORK_TRAIN_CPU, budget=2), "autoresearch fork",
     {"harness": (), "budget_seconds": 2.0, "timeout_seconds": 302.0, "runner": "local"}),
    ({"bench.py": "print(1)\n", "lib.py": ""}, "benchmark", {"command": "python bench.py", "runner": "local"}),
])
def test_detect_writes_settings_that_parse(files, kind, expect):
    layout = detect(files)
    assert layout.kind == kind
    config = parse_config(yaml.safe_load(layout.settings))
    for key, value in expect.items():
        assert getattr(config, key) == value, (key, layout.settings)


def test_a_fork_is_told_its_packages_and_its_data_step():
    layout = detect(dict(fork_files(FORK_TRAIN_CUDA), **{"uv.lock": ""}))
    steps = "\n".join(layout.steps)
    assert "pip install 'kernels>=0.11.7' 'numpy>=2.2.6' 'torch==2.9.1'" in steps
    assert "uv run prepare.py" in steps and "~/.cache/autoresearch" in steps


def test_a_missing_package_hint_names_what_the_repository_declares():
    hint = crash_hint("ModuleNotFoundError: No module named 'kernels'", ["'kernels>=0.11.7'", "rustbpe"])
    assert "pip install 'kernels>=0.11.7' rustbpe" in hint and "pyproject.toml declares" in hint


@pytest.mark.parametrize("tail, words", [
    ("Traceback ...\nModuleNotFoundError: No module named 'kernels'\n", ["`kernels`", "pip install kernels",
                                                                          "autoresearch fork"]),
    ("ModuleNotFoundError: No module named 'yaml.loader'", ["`yaml`", "pip install pyyaml"]),
    ("AssertionError: Torch not compiled with CUDA enabled", ["needs a CUDA GPU", "drop --local", "Modal"]),
    ("RuntimeError: Found no NVIDIA driver on your system.", ["needs a CUDA GPU"]),
    ("ValueError: shapes do not match", []),
    ("", []),
])
def test_crash_hints(tail, words):
    hint = crash_hint(tail)
    assert all(word in hint for word in words), hint
    assert bool(hint) == bool(words)


def _fork_repo(tmp_path, train, budget=2):
    repo = make_repo(tmp_path / "fork", fork_files(train, budget))
    home = tmp_path / "home"
    home.mkdir()
    return repo, {"HOME": str(home)}


def _bot(repo, env, *args):
    return subprocess.run([sys.executable, "-m", "bot", *args, "--repo", str(repo)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env, "PYTHONPATH": str(ROOT)})


def test_init_then_one_experiment_on_a_cpu_fork(tmp_path):
    repo, env = _fork_repo(tmp_path, FORK_TRAIN_CPU)
    done = _bot(repo, env, "init")
    assert done.returncode == 0 and "Recognised: autoresearch fork" in done.stdout, done.stdout + done.stderr
    assert "python prepare.py" in done.stdout  # the once-only data step, named
    subprocess.run([sys.executable, "prepare.py"], cwd=repo, env={**os.environ, **env}, check=True)
    subprocess.run(["git", "-C", str(repo), "add", "autoresearch.yaml"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "settings"], check=True)
    done = _bot(repo, env, "run", "--local", "--iterations", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = (repo / ".autoresearch" / "default" / "results.tsv").read_text().splitlines()
    assert len(rows) == 3  # header, baseline, one experiment: the data in ~/.cache was read in the sandbox


def test_init_refuses_to_overwrite_settings(tmp_path):
    repo, env = _fork_repo(tmp_path, FORK_TRAIN_CPU)
    (repo / "autoresearch.yaml").write_text("tag: mine\n")
    result = CliRunner().invoke(cli, ["init", "--repo", str(repo)])
    assert result.exit_code == 1 and "--force" in result.output
    assert (repo / "autoresearch.yaml").read_text() == "tag: mine\n"


@pytest.mark.parametrize("train, words", [
    (FORK_TRAIN_CUDA, "needs a CUDA GPU"),
    (FORK_TRAIN_KERNELS, "`kernels`"),
])
def test_the_real_forks_error_paths_say_what_is_missing(tmp_path, train, words):
    repo, env = _fork_repo(tmp_path, train, budget=300)
    assert _bot(repo, env, "init").returncode == 0
    subprocess.run(["git", "-C", str(repo), "add", "autoresearch.yaml"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "settings"], check=True)
    done = _bot(repo, env, "run", "--local", "--iterations", "1")
    assert done.returncode == 1
    assert words in done.stderr and "Fix train.py" not in done.stderr, done.stderr
