"""Tests of train.py: real CPU runs from a throwaway copy, and the hyperparameter conventions the bot relies on."""

import ast
import math
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = ["val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent", "total_tokens_M",
                "num_steps", "num_params_M", "depth", "device"]


def run_train(tmp_path, budget="3", edit=None):
    """Run train.py by hand from a copy in tmp_path (nothing in the repository is written): without
    the job, evaluate_bpb scores the model in-process. Returns the process."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "prepare.py", work)
    source = (ROOT / "train.py").read_text()
    (work / "train.py").write_text(edit(source) if edit else source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    env.update(AUTORESEARCH_BUDGET_SECONDS=budget, AUTORESEARCH_DATA="stdlib",
               AUTORESEARCH_CACHE_DIR=str(tmp_path / "cache"), CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "train.py"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)


def parse_summary(stdout):
    lines = stdout.splitlines()
    assert "---" in lines, stdout
    pairs = (line.split(":", 1) for line in lines[lines.index("---") + 1:] if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def test_a_short_cpu_run_learns_and_agrees_with_the_harness(tmp_path):
    process = run_train(tmp_path)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-2000:]
    summary = parse_summary(process.stdout)
    assert all(key in summary for key in SUMMARY_KEYS), summary
    numbers = {key: float(summary[key]) for key in SUMMARY_KEYS if key != "device"}
    assert math.isfinite(numbers["val_bpb"]) and numbers["val_bpb"] < 8.0  # better than uniform
    assert 3.0 <= numbers["training_seconds"] < 8.0
    assert numbers["num_steps"] >= 3 and numbers["depth"] == 2 and summary["device"] == "cpu"
    assert numbers["peak_vram_mb"] == 0.0 and numbers["mfu_percent"] == 0.0
    assert "evaluated by hand" in process.stderr  # under the bot, a fresh process of the harness measures it
    progress = re.findall(r"^step \d{5} \((\d+\.\d)%\) \| loss: ", process.stdout, flags=re.M)
    assert progress and float(progress[-1]) == 100.0


def test_a_diverging_run_fails_fast(tmp_path):
    huge_lr = lambda source: re.sub(r"(?m)^(LEARNING_RATE|MATRIX_LR|EMBEDDING_LR) = \S+", r"\1 = 1e9", source)
    process = run_train(tmp_path, budget="30", edit=huge_lr)
    assert process.returncode == 1
    assert re.search(r"^FAIL: loss is \S+ at step \d+$", process.stdout, flags=re.M), process.stdout[-2000:]
    assert "---" not in process.stdout.splitlines()


# ---------------------------------------------------------------------------
# Conventions (the offline proposer mutates UPPER_CASE literals)
# ---------------------------------------------------------------------------


def top_level_constants():
    tree = ast.parse((ROOT / "train.py").read_text())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                constants[name] = node
    return constants


def test_hyperparameters_are_commented_literals_with_cpu_twins():
    constants = top_level_constants()
    comments = {}
    with open(ROOT / "train.py", "rb") as f:
        for token in tokenize.tokenize(f.readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string
    for name, node in constants.items():
        value = node.value
        assert isinstance(value, ast.Constant) and type(value.value) in (int, float, bool), \
            f"{name} is not a number or flag literal"
        assert node.lineno in comments, f"{name} has no # unit/meaning comment"
    for name in ("DEPTH", "MODEL_DIM", "N_HEAD", "DEVICE_BATCH_SIZE", "TOTAL_BATCH_SIZE"):
        assert name in constants and f"CPU_{name}" in constants
    assert all(name[4:] in constants for name in constants if name.startswith("CPU_"))
    assert not any("SEED" in name for name in constants)
    assert "LEARNING_RATE" in constants and "CPU_LEARNING_RATE" not in constants


def test_cpu_adamw_matches_torch_adamw():
    tree = ast.parse((ROOT / "train.py").read_text())
    adamw = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "AdamW")
    namespace = {"torch": torch, "math": math}
    exec(compile(ast.Module([adamw], type_ignores=[]), "train.py", "exec"), namespace)
    torch.manual_seed(0)
    ours = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    groups = lambda ps: [dict(params=[ps[0]], weight_decay=0.1), dict(params=[ps[1]], weight_decay=0.0)]
    optimizers = [(namespace["AdamW"](groups(ours), lr=1e-2, betas=(0.9, 0.95), eps=1e-8), ours),
                  (torch.optim.AdamW(groups(theirs), lr=1e-2, betas=(0.9, 0.95), eps=1e-8), theirs)]
    for step in range(20):
        for optimizer, params in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = 1e-2 * (1 - step / 20)
            ((params[0] ** 2).sum() + params[1].sin().sum() * step).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
