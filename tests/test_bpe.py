"""The parquet source's BPE tokenizer (prepare.py): trained on the train split only, deterministically,
cached; uint16 splits with meta.json and token_bytes.bin; bits per byte over the targets' UTF-8 bytes with
special tokens left out. Small parquet files in tmp: each tokenizer trains on ~100 KB in well under a second."""

import hashlib
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip("tokenizers")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import prepare  # noqa: E402

V = prepare.BPE_VOCAB_SIZE
WORDS = ("the of and to in is was for on that with as by at from this are be or it an which have has were "
         "river mountain number harbour glorptastic station garden window music letter market winter summer "
         "engine 2024 1999 3.14 42").split()
VAL_MARKER = "xqjvkzwy"  # in the validation shard only, hundreds of times
TRAIN_WORD = "glorptastic"  # as frequent in training: the control that a frequent word does become one token


def documents(seed, count, extra=None):
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(20, 80))]
        if extra:
            words[rng.randrange(len(words))] = extra
            words[rng.randrange(len(words))] = extra
        docs.append(" ".join(words).capitalize() + ".\nÉté — naïve café, 12345 ünïcödé 😀\n")
    return docs


def write_shards(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        pq.write_table(pa.table({"text": documents(i, 150) + [""]}), folder / f"shard_{i:05d}.parquet")
    pq.write_table(pa.table({"text": documents(9, 120, VAL_MARKER)}), folder / "shard_06542.parquet")
    return folder


pytestmark = pytest.mark.usefixtures("clean_harness_env")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture
def bpe(monkeypatch, shards):
    monkeypatch.setenv("AUTORESEARCH_DATA", f"parquet:{shards}")
    return prepare.load_corpus()


def val_docs(shards):
    return [s for s in pq.read_table(shards / "shard_06542.parquet").column("text").to_pylist() if s]


# ---- the tokenizer ------------------------------------------------------------------------


def test_training_is_deterministic_and_cached(monkeypatch, tmp_path, bpe):
    trainings = prepare.BPE_TRAININGS
    tokenizer_file = Path(bpe.tokenizer)
    first_mtime = tokenizer_file.stat().st_mtime_ns

    monkeypatch.setattr(prepare, "_CORPORA", {})  # a new process, the same cache: nothing is trained again
    again = prepare.load_corpus()
    assert prepare.BPE_TRAININGS == trainings and tokenizer_file.stat().st_mtime_ns == first_mtime
    assert again.tokenizer == bpe.tokenizer and np.array_equal(again.train, bpe.train)

    monkeypatch.setenv("AUTORESEARCH_CACHE_DIR", str(tmp_path / "other-cache"))  # trained afresh: the same ids
    monkeypatch.setattr(prepare, "_CORPORA", {})
    fresh = prepare.load_corpus()
    assert prepare.BPE_TRAININGS == trainings + 1 and fresh.tokenizer != bpe.tokenizer
    assert Path(fresh.tokenizer).read_bytes() == tokenizer_file.read_bytes()
    assert np.array_equal(fresh.train, bpe.train) and np.array_equal(fresh.val, bpe.val)
    assert fresh.fingerprint == bpe.fingerprint and f"bpe/{bpe.fingerprint}-" in bpe.tokenizer


def test_vocabulary_specials_round_trip_and_byte_lengths(bpe):
    tokenizer = prepare.load_tokenizer(bpe.tokenizer)
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    assert len(vocab) <= V and max(vocab.values()) < V and bpe.vocab_size == V
    assert [vocab[t] for t in prepare.BPE_SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert len(bpe.token_bytes) == V and bpe.token_bytes.dtype == np.int32 and not bpe.token_bytes[:4].any()
    assert set(prepare.BPE_SPECIAL_TOKENS) <= set(tokenizer.get_added_tokens_decoder()[i].content for i in range(4))

    text = "Été — naïve café at 12345 on 3.14!\n\tünïcödé 😀 <|reserved_0|> glorptastic\n"
    ids = tokenizer.encode(text).ids
    assert tokenizer.decode(ids) == text
    assert int(bpe.token_bytes[ids].sum()) == len(text.encode("utf-8"))
    assert 0 not in ids  # a special token's text inside a document is text
    pieces = [tokenizer.decode([i]) for i in tokenizer.encode("12345").ids]
    assert pieces == ["12", "34", "5"]  # numbers split in groups of 1-2 digits

    # the splits: every document starts with BOS, and the ids' bytes are the documents' bytes
    docs = val_docs(Path(bpe.hide[0]).parent)
    assert int((bpe.val == 0).sum()) == len(docs) and bpe.val[0] == 0
    assert int(bpe.token_bytes[bpe.val].sum()) == sum(len(d.encode("utf-8")) for d in docs)


def test_the_validation_split_never_trains_the_tokenizer(bpe):
    tokenizer = prepare.load_tokenizer(bpe.tokenizer)
    pieces = list(tokenizer.get_vocab())
    assert not [p for p in pieces if "xqj" in p or "vkz" in p]  # no merge learnt from the marker
    assert len(tokenizer.encode(" " + VAL_MARKER).ids) >= 4
    assert len(tokenizer.encode(" " + TRAIN_WORD).ids) == 1  # the control: as frequent, but in training


def test_vocab_size_comes_from_the_spec_alone(monkeypatch, tmp_path):
    for spec, vocab in (("parquet", V), (f"parquet:{tmp_path}/none", V), ("stdlib", 256), ("text:x/*.txt", 256)):
        monkeypatch.setenv("AUTORESEARCH_DATA", spec)
        assert prepare._vocab_size() == vocab  # no file is read: the folder does not exist
    monkeypatch.setenv("AUTORESEARCH_DATA", "auto")
    monkeypatch.setattr(prepare, "GPU_PROFILE", True)  # the memory preflight's GPU profile, without a GPU
    assert prepare._vocab_size() == V
    monkeypatch.setattr(prepare, "GPU_PROFILE", False)
    assert prepare._vocab_size() == 256


def test_missing_tokenizers_names_the_fix(monkeypatch, tmp_path):
    write_shards(tmp_path / "shards")
    monkeypatch.setenv("AUTORESEARCH_DATA", f"parquet:{tmp_path / 'shards'}")
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(RuntimeError, match=r"pip install tokenizers.*AUTORESEARCH_DATA=stdlib"):
        prepare.load_corpus()


# ---- splits on disk, the train phase, the dataloader ----------------------------------------


def test_materialize_writes_uint16_splits_token_bytes_and_meta(monkeypatch, tmp_path, bpe):
    meta = prepare.materialize(tmp_path / "data")
    data = tmp_path / "data"
    assert json.loads((data / "meta.json").read_text()) == meta
    assert meta["tokenizer"] == "bpe" and meta["vocab_size"] == V and meta["dtype"] == "uint16"
    assert meta["token_bytes"] == "token_bytes.bin" and meta["tokenizer_file"] == "tokenizer.json"
    assert meta["train_tokens"] == len(bpe.train) and os.path.getsize(data / "train.bin") == 2 * len(bpe.train)
    assert np.array_equal(np.fromfile(data / "val.bin", dtype="<u2"), bpe.val)
    lengths = np.frombuffer((data / "token_bytes.bin").read_bytes(), dtype="<i4")  # raw little-endian int32
    assert np.array_equal(lengths, bpe.token_bytes)
    assert meta["val_bytes"] == sum(len(d.encode()) for d in val_docs(Path(bpe.hide[0]).parent))
    assert meta["tokenizer_sha256"] == hashlib.sha256((data / "tokenizer.json").read_bytes()).hexdigest()
    assert any(p.endswith("shard_06542.parquet") for p in meta["hide"])
    assert any(p.endswith("val.bin") for p in meta["hide"])

    # the train phase: dtype and vocabulary from meta.json beside the train file, no validation split
    monkeypatch.setenv("AUTORESEARCH_TRAIN_DATA", str(data / "train.bin"))
    monkeypatch.delenv("AUTORESEARCH_DATA")
    monkeypatch.setattr(prepare, "_CORPORA", {})
    assert prepare._vocab_size() == V
    corpus = prepare.load_corpus()
    assert corpus.val is None and corpus.train.dtype == np.uint16 and corpus.vocab_size == V
    x, y = next(prepare.make_dataloader("train", 4, 64, "cpu"))
    assert x.dtype == y.dtype == torch.int64 and torch.equal(x[:, 1:], y[:, :-1]) and int(x.max()) < V
    row = np.concatenate([x[0].numpy(), y[0, -1:].numpy()]).astype(np.uint16)
    starts = np.flatnonzero(bpe.train[:len(bpe.train) - 64] == row[0])
    assert any(np.array_equal(bpe.train[s:s + 65], row) for s in starts)  # a window of the split, as stored


def test_a_train_phase_process_sizes_its_model_from_meta(tmp_path, bpe):
    prepare.materialize(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTORESEARCH_")}
    env.update(AUTORESEARCH_TRAIN_DATA=str(tmp_path / "data" / "train.bin"), CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", "import prepare; print(prepare.VOCAB_SIZE)"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == [str(V)], out.stderr


# ---- scoring ------------------------------------------------------------------------------


class Uniform(nn.Module):
    def forward(self, idx):
        return torch.zeros(*idx.shape, V)


class InVocab(nn.Module):
    """Causal and sized for BPE; fails if any input id (the probe's replacement too) is outside the vocabulary."""

    def __init__(self, peek=False):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.head, self.peek = nn.Embedding(V, 8), nn.Linear(8, V), peek

    def forward(self, idx):
        assert 0 <= int(idx.min()) and int(idx.max()) < V
        h = self.emb(idx)
        return self.head(h + torch.roll(h, -1, 1) if self.peek else h)


def expected_uniform_bpb(val, lengths):
    """log2(V) per counted target over the targets' bytes, the rows chosen as the harness defines them."""
    T = prepare.MAX_SEQ_LEN
    n_seq = min(prepare.EVAL_TOKENS // T, (len(val) - 1) // (T + 1))
    stride = (len(val) - 1) // n_seq
    targets = np.concatenate([np.asarray(val[i * stride + 1:i * stride + T + 1]) for i in range(n_seq)])
    counted = lengths[targets] > 0
    assert counted.sum() < len(targets)  # some targets are BOS: the check below depends on leaving them out
    return math.log2(V) * int(counted.sum()) / int(lengths[targets].sum())


def test_a_uniform_model_scores_log2_v_per_token_over_bytes(monkeypatch, tmp_path, bpe):
    prepare.materialize(tmp_path / "data")
    expected = expected_uniform_bpb(bpe.val, bpe.token_bytes)
    monkeypatch.setenv("AUTORESEARCH_HANDOFF", str(tmp_path / "model.graph"))
    assert math.isnan(prepare.evaluate_bpb(Uniform(), 16))
    monkeypatch.delenv("AUTORESEARCH_HANDOFF")
    result = prepare.evaluate_graph(tmp_path / "model.graph", tmp_path / "data", tmp_path / "result.json")
    assert result["val_bpb"] == pytest.approx(expected, rel=1e-12) and result["causal"] is True
    assert result["tokenizer"] == "bpe" and result["vocab_size"] == V and result["eval_bytes"] > result["eval_tokens"]
    assert prepare.evaluate_bpb(Uniform(), 16) == pytest.approx(expected, rel=1e-12)  # by hand: the same


def test_the_causality_probe_stays_in_the_vocabulary_and_catches_a_peek(bpe):
    assert math.isfinite(prepare.evaluate_bpb(InVocab(), 32))
    with pytest.raises(RuntimeError, match="non-causal"):
        prepare.evaluate_bpb(InVocab(peek=True), 32)


# ---- the job, end to end ------------------------------------------------------------------

BPE_TRAIN = """\
import torch
import prepare
assert prepare.VOCAB_SIZE == 8192, prepare.VOCAB_SIZE
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(prepare.VOCAB_SIZE, 16)
        self.head = torch.nn.Linear(16, prepare.VOCAB_SIZE)
    def forward(self, idx):
        return self.head(self.emb(idx))
model = Tiny()
opt = torch.optim.Adam(model.parameters(), lr=3e-2)
batches = prepare.make_dataloader("train", 8, prepare.MAX_SEQ_LEN, "cpu")
for step in range(30):
    x, y = next(batches)
    loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad(); loss.backward(); opt.step()
    print(f"step {step:05d} ({(step + 1) / 30 * 100:.1f}%) | loss: {loss.item():.3f}", flush=True)
val_bpb = prepare.evaluate_bpb(model, 16)
print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print("training_seconds: 1.0")
print("device:           cpu")
"""


def test_the_job_runs_end_to_end_on_a_bpe_source(tmp_path, shards):
    from gpu_jobs.job import JobSpec, run_job

    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(BPE_TRAIN)
    (source / "prepare.py").write_bytes((ROOT / "prepare.py").read_bytes())
    spec = JobSpec(source_dir=str(source), data=f"parquet:{shards}", budget_seconds=1.0, startup_seconds=120,
                   log_path=str(tmp_path / "run.log"),
                   expected_harness={"prepare.py": hashlib.sha256((ROOT / "prepare.py").read_bytes()).hexdigest()})
    environ = dict(os.environ, AUTORESEARCH_CACHE_DIR=str(tmp_path / "cache"), CUDA_VISIBLE_DEVICES="")
    result = run_job(spec, environ=environ)
    assert result["status"] == "ok", result["reason"] + result["log_tail"]
    measured = result["harness_result"]
    assert measured["tokenizer"] == "bpe" and measured["vocab_size"] == V and measured["causal"] is True
    # 30 steps of a bigram from uniform: below log2(8192) bits per token, spread over ~4 bytes per token
    assert result["metric_source"] == "harness" and 0.5 < result["metric"] < math.log2(V)
    cached = list((tmp_path / "cache" / "splits").glob("*/token_bytes.bin"))
    assert len(cached) == 1 and (cached[0].parent / "tokenizer.json").exists()
