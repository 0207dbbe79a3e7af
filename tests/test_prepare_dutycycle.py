"""The harness's fixed costs (issue #10, duty cycle): no compiling in evaluation, data mapped rather
than read, and host-to-device copies that do not make the CPU wait for the GPU."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import prepare


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("BUDGET_SECONDS", "SEED", "TRAIN_DATA", "HANDOFF", "DATA", "CACHE_DIR"):
        monkeypatch.delenv(f"AUTORESEARCH_{name}", raising=False)
    monkeypatch.setenv("AUTORESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTORESEARCH_DATA", "stdlib")
    monkeypatch.setattr(prepare, "_CORPORA", {})


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("splits")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTORESEARCH_DATA", "stdlib")
        mp.setattr(prepare, "_CORPORA", {})
        prepare.materialize(folder)
    return folder


class Bigram(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(prepare.VOCAB_SIZE, 16)
        self.head = nn.Linear(16, prepare.VOCAB_SIZE)

    def forward(self, idx):
        return self.head(self.emb(idx))


class Graphs:
    """A torch.compile backend that counts the graphs Dynamo hands it (each one is a compile)."""

    def __init__(self):
        self.count = 0

    def __call__(self, gm, example_inputs):
        self.count += 1
        return gm.forward


def test_scoring_by_hand_compiles_nothing_even_for_a_compiled_model(monkeypatch):
    graphs = Graphs()
    model = Bigram()
    compiled = torch.compile(model, backend=graphs)
    x, y = next(prepare.make_dataloader("train", 4, prepare.MAX_SEQ_LEN, "cpu"))
    nn.functional.cross_entropy(compiled(x).view(-1, prepare.VOCAB_SIZE), y.view(-1)).backward()  # a training step
    assert graphs.count == 1
    value = prepare.evaluate_bpb(compiled, 4)
    # Before: the no_grad evaluation made Dynamo compile a second graph (on a GPU, 10-40 s for one run).
    assert graphs.count == 1 and math.isfinite(value)
    assert value == pytest.approx(prepare.evaluate_bpb(model, 4), rel=1e-9)


def test_every_scored_batch_and_its_probe_reach_the_forward_alike(monkeypatch):
    """Same shape, strides, dtype and grad mode for the scored batch and the causality probe: a
    compiled forward compiles once for the whole evaluation."""
    seen = set()

    def forward(b):
        seen.add((tuple(b.shape), b.stride(), b.dtype, b.is_contiguous(), torch.is_grad_enabled()))
        return torch.zeros(*b.shape, prepare.VOCAB_SIZE)

    val = np.frombuffer(bytes(range(256)) * 400, dtype=np.uint8)
    with torch.no_grad():
        result = prepare.score_bpb(forward, val, 7, torch.device("cpu"))  # 7: the last batch is padded
    assert result["val_bpb"] == pytest.approx(8.0)
    assert seen == {((7, prepare.MAX_SEQ_LEN), (prepare.MAX_SEQ_LEN, 1), torch.int64, True, False)}

    graphs = Graphs()
    compiled = torch.compile(Bigram(), backend=graphs)
    with torch.no_grad():
        prepare.score_bpb(compiled, val, 7, torch.device("cpu"))
    assert graphs.count == 1


def test_the_splits_are_mapped_not_read(monkeypatch, splits):
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: pytest.fail("a split was read whole"))
    monkeypatch.setenv("AUTORESEARCH_TRAIN_DATA", str(splits / "train.bin"))
    train = prepare.load_corpus().train
    assert isinstance(train, np.memmap) and train.flags.writeable  # copy-on-write: torch.from_numpy takes it
    assert prepare.load_corpus().train is train  # once per process
    val, meta = prepare._load_val(splits)
    assert isinstance(val, np.memmap) and len(val) == meta["val_bytes"] and meta["fingerprint"]
    x, _ = next(prepare.make_dataloader("train", 2, 16, "cpu"))
    assert x.shape == (2, 16)
    before = (splits / "train.bin").read_bytes()[:64]
    train[:64] = 0  # a write to the map never reaches the file (the sandbox mounts it read-only anyway)
    assert (splits / "train.bin").read_bytes()[:64] == before


def test_an_empty_split_file_is_not_mapped(tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    assert len(prepare._token_file(tmp_path / "empty.bin")) == 0


def test_host_to_device_copies_are_pinned_and_non_blocking_on_cuda_only(monkeypatch):
    t = torch.arange(4)
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pytest.fail("pinned on CPU"))
    assert prepare._to_device(t, "cpu") is t  # the CPU path copies nothing
    calls = []

    class Pinned:
        def to(self, device, non_blocking=False):
            calls.append((device, non_blocking))
            return "on the GPU"

    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: Pinned())
    assert prepare._to_device(t, "cuda") == "on the GPU"
    assert calls == [("cuda", True)]
