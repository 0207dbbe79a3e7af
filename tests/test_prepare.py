"""Tests of the frozen harness (prepare.py): data sources, dataloader, evaluation and its integrity checks."""

import hashlib
import http.server
import json
import math
import re
import sys
import threading
from pathlib import Path

import pytest
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import prepare  # noqa: E402

RESULT_KEYS = {"val_bpb", "causal", "causal_max_diff", "eval_tokens", "eval_seconds", "harness_sha256",
               "data_source", "data_fingerprint", "device", "seed", "seq_len", "time_budget"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No AUTORESEARCH_* from the outside; a private cache; no corpus remembered between tests."""
    for name in ("BUDGET_SECONDS", "SEED", "RESULT_PATH", "DATA", "CACHE_DIR"):
        monkeypatch.delenv(f"AUTORESEARCH_{name}", raising=False)
    monkeypatch.setenv("AUTORESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(prepare, "_CORPORA", {})


def write_files(folder, count, size=600):
    """Files whose contents are unique markers, so each can be found in exactly one split."""
    markers = []
    for i in range(count):
        marker = f"<file {i:03d}>"
        path = folder / f"sub{i % 3}" / f"f{i:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(marker * (size // len(marker)))
        markers.append(marker.encode())
    return markers


# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------


def test_environment_defaults_and_overrides(monkeypatch):
    assert prepare.run_seed() == 42
    assert prepare.time_budget() == (300.0 if torch.cuda.is_available() else 20.0)
    assert prepare.result_path() is None
    assert prepare.data_spec() == ("parquet" if torch.cuda.is_available() else "stdlib")
    monkeypatch.setenv("AUTORESEARCH_SEED", "7")
    monkeypatch.setenv("AUTORESEARCH_BUDGET_SECONDS", "2.5")
    assert prepare.run_seed() == 7 and prepare.time_budget() == 2.5
    assert prepare.VOCAB_SIZE == 256 and prepare.MAX_SEQ_LEN in (128, 2048)


def test_bad_numbers_are_named(monkeypatch):
    monkeypatch.setenv("AUTORESEARCH_SEED", "forty-two")
    with pytest.raises(ValueError, match="AUTORESEARCH_SEED"):
        prepare.run_seed()
    monkeypatch.setenv("AUTORESEARCH_BUDGET_SECONDS", "-1")
    with pytest.raises(ValueError, match="AUTORESEARCH_BUDGET_SECONDS"):
        prepare.time_budget()


# ---------------------------------------------------------------------------
# Data sources
# ---------------------------------------------------------------------------


def test_stdlib_source_loads_with_a_deterministic_split(monkeypatch):
    monkeypatch.setenv("AUTORESEARCH_DATA", "stdlib")
    corpus = prepare.load_corpus()
    assert corpus.source == "stdlib"
    assert corpus.train.dtype.name == "uint8" and len(corpus.train) > 2_000_000
    assert 0.03 < len(corpus.val) / (len(corpus.train) + len(corpus.val)) < 0.15
    assert re.fullmatch(r"[0-9a-f]{12}-\d+", corpus.fingerprint)
    assert corpus.fingerprint.endswith(f"-{len(corpus.train) + len(corpus.val)}")
    assert prepare.load_corpus() is corpus  # loaded once per process
    monkeypatch.setattr(prepare, "_CORPORA", {})
    again = prepare.load_corpus()
    assert again.fingerprint == corpus.fingerprint and (again.val == corpus.val).all()
    names = [name for name, _ in prepare._stdlib_files()]
    assert "os.py" in names and not any(n.startswith(("test/", "idlelib/", "site-packages/")) for n in names)
    held_out = {n for n in names if prepare._is_val(n)}
    assert held_out and held_out == {n for n in names if prepare._is_val(n)}


def test_text_glob_source_splits_by_file_disjointly(monkeypatch, tmp_path):
    markers = write_files(tmp_path / "data", 40)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTORESEARCH_DATA", "text:data/**/*.txt")
    corpus = prepare.load_corpus()
    train, val = corpus.train.tobytes(), corpus.val.tobytes()
    assert all((m in train) != (m in val) for m in markers)  # every file in exactly one split
    assert any(m in val for m in markers) and any(m in train for m in markers)
    assert corpus.source == "text:data/**/*.txt"


def test_text_source_with_one_file_holds_out_its_tail(monkeypatch, tmp_path):
    data = bytes(range(256)) * 40
    (tmp_path / "one.txt").write_bytes(data)
    monkeypatch.setenv("AUTORESEARCH_DATA", f"text:{tmp_path}/*.txt")
    corpus = prepare.load_corpus()
    cut = int(len(data) * 0.9)
    assert corpus.train.tobytes() == data[:cut] and corpus.val.tobytes() == data[cut:]


@pytest.mark.parametrize("spec, message", [
    ("text:nothing/**/*.md", "matched no files"),
    ("wikipedia", "unknown AUTORESEARCH_DATA"),
    ("text:", "unknown AUTORESEARCH_DATA"),
])
def test_bad_sources_fail_loudly(monkeypatch, tmp_path, spec, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTORESEARCH_DATA", spec)
    with pytest.raises(ValueError, match=message):
        prepare.load_corpus()


def test_a_corpus_too_small_for_one_sequence_fails_loudly(monkeypatch, tmp_path):
    (tmp_path / "tiny.txt").write_text("print('hello')\n")
    monkeypatch.setenv("AUTORESEARCH_DATA", f"text:{tmp_path}/tiny.txt")
    with pytest.raises(ValueError, match="fewer than one sequence"):
        prepare.load_corpus()


def write_parquet(path, docs):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": docs, "id": list(range(len(docs)))}), path)


@pytest.fixture
def shard_server(tmp_path, monkeypatch):
    """Parquet shards served over loopback HTTP; yields (base url, list of requested paths)."""
    monkeypatch.setattr(prepare, "PARQUET_TRAIN_SHARDS", 2)
    served = tmp_path / "served"
    served.mkdir()
    for i in range(2):
        write_parquet(served / f"shard_{i:05d}.parquet", [f"train shard {i} doc {j} " * 20 for j in range(30)])
    write_parquet(served / f"shard_{prepare.PARQUET_VAL_SHARD:05d}.parquet", [f"val doc {j} " * 30 for j in range(30)])
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    server.shutdown()
    server.server_close()


def test_parquet_shards_download_once_and_give_batches(monkeypatch, tmp_path, shard_server):
    base, requests = shard_server
    monkeypatch.setenv("AUTORESEARCH_DATA", f"parquet:{base}")
    corpus = prepare.load_corpus()
    assert sorted(requests) == ["/shard_00000.parquet", "/shard_00001.parquet", "/shard_06542.parquet"]
    assert b"train shard 1 doc 29" in corpus.train.tobytes() and b"val doc" not in corpus.train.tobytes()
    assert b"val doc 29" in corpus.val.tobytes() and b"train" not in corpus.val.tobytes()
    cached = sorted(p.name for p in (tmp_path / "cache" / "shards").glob("*/*"))
    assert cached == ["shard_00000.parquet", "shard_00001.parquet", "shard_06542.parquet"]  # no temp files left

    monkeypatch.setattr(prepare, "_CORPORA", {})  # a new process: reads the cache, asks nothing
    assert prepare.load_corpus().fingerprint == corpus.fingerprint
    assert len(requests) == 3
    x, y = next(prepare.make_dataloader("train", 4, 64, "cpu"))
    assert x.shape == y.shape == (4, 64) and x.dtype == torch.int64


def test_parquet_download_failure_names_the_url_and_the_fix(monkeypatch, shard_server):
    base, _ = shard_server
    monkeypatch.setattr(prepare, "PARQUET_TRAIN_SHARDS", 3)  # shard_00002 is not served: 404
    monkeypatch.setenv("AUTORESEARCH_DATA", f"parquet:{base}")
    with pytest.raises(RuntimeError, match=r"shard_00002\.parquet.*AUTORESEARCH_DATA=parquet:/path/to/dir"):
        prepare.load_corpus()


def test_parquet_from_a_local_folder(monkeypatch, tmp_path):
    write_parquet(tmp_path / "a.parquet", ["alpha " * 100])
    write_parquet(tmp_path / "b.parquet", ["omega " * 100])
    monkeypatch.setenv("AUTORESEARCH_DATA", f"parquet:{tmp_path}")
    corpus = prepare.load_corpus()
    assert corpus.train.tobytes().startswith(b"alpha") and corpus.val.tobytes().startswith(b"omega")
    (tmp_path / "b.parquet").unlink()
    monkeypatch.setattr(prepare, "_CORPORA", {})
    with pytest.raises(ValueError, match="at least two"):
        prepare.load_corpus()


# ---------------------------------------------------------------------------
# Dataloader
# ---------------------------------------------------------------------------


def test_dataloader_batches_are_shifted_and_seeded(monkeypatch, tmp_path):
    write_files(tmp_path, 30, size=2000)
    monkeypatch.setenv("AUTORESEARCH_DATA", f"text:{tmp_path}/**/*.txt")
    x, y = next(prepare.make_dataloader("train", 8, 32, "cpu"))
    assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    first = lambda split: next(prepare.make_dataloader(split, 8, 32, "cpu"))[0]
    assert torch.equal(first("train"), x) and not torch.equal(first("val"), x)
    monkeypatch.setenv("AUTORESEARCH_SEED", "43")
    assert not torch.equal(first("train"), x)
    with pytest.raises(ValueError, match="split"):
        next(prepare.make_dataloader("test", 8, 32, "cpu"))


# ---------------------------------------------------------------------------
# Evaluation and the causality probe
# ---------------------------------------------------------------------------


class Uniform(nn.Module):
    def forward(self, idx):
        return torch.zeros(*idx.shape, prepare.VOCAB_SIZE)


class Bigram(nn.Module):
    """Causal: position t sees only token t. With mix_future, every position also sees the mean over
    the whole sequence (a non-causal leak); with peek, position t sees token t + 1."""

    def __init__(self, mix_future=False, peek=False):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(prepare.VOCAB_SIZE, 16)
        self.head = nn.Linear(16, prepare.VOCAB_SIZE)
        self.mix_future, self.peek = mix_future, peek

    def forward(self, idx):
        h = self.emb(idx)
        if self.mix_future:
            h = h + h.mean(dim=1, keepdim=True)
        if self.peek:
            h = h + torch.roll(h, shifts=-1, dims=1)
        return self.head(h)


@pytest.fixture
def result_file(monkeypatch, tmp_path):
    path = tmp_path / "out" / "result.json"
    monkeypatch.setenv("AUTORESEARCH_RESULT_PATH", str(path))
    monkeypatch.setenv("AUTORESEARCH_DATA", "stdlib")
    monkeypatch.setenv("AUTORESEARCH_SEED", "5")
    monkeypatch.setenv("AUTORESEARCH_BUDGET_SECONDS", "12")
    return path


def test_uniform_logits_score_exactly_eight_bits(result_file):
    assert prepare.evaluate_bpb(Uniform(), 16) == pytest.approx(8.0, abs=1e-9)
    result = json.loads(result_file.read_text())
    assert result["val_bpb"] == pytest.approx(8.0, abs=1e-9) and result["causal"] is True


def test_causal_model_passes_and_the_result_json_is_complete(result_file):
    model = Bigram()
    val_bpb = prepare.evaluate_bpb(model, 7)  # 7 does not divide the sequences: last batch padded
    assert 0 < val_bpb < 9 and model.training  # train mode restored
    result = json.loads(result_file.read_text())
    assert set(result) == RESULT_KEYS
    assert result["val_bpb"] == val_bpb and result["causal"] is True and result["causal_max_diff"] == 0.0
    assert result["eval_tokens"] == prepare.EVAL_TOKENS and result["seq_len"] == prepare.MAX_SEQ_LEN
    assert result["harness_sha256"] == hashlib.sha256((ROOT / "prepare.py").read_bytes()).hexdigest()
    assert result["data_source"] == "stdlib" and result["data_fingerprint"] == prepare.load_corpus().fingerprint
    assert (result["device"], result["seed"], result["time_budget"]) == ("cpu", 5, 12.0)
    assert list(result_file.parent.iterdir()) == [result_file]  # written atomically, no temp file left
    assert prepare.evaluate_bpb(model, 7) == val_bpb  # a fixed slice: deterministic


@pytest.mark.parametrize("leak", ["mix_future", "peek"])
@pytest.mark.parametrize("batch_size", [1, 8])
def test_probe_catches_a_model_that_sees_the_future(result_file, leak, batch_size):
    with pytest.raises(RuntimeError, match="non-causal"):
        prepare.evaluate_bpb(Bigram(**{leak: True}), batch_size)
    result = json.loads(result_file.read_text())  # still written, flagged
    assert result["causal"] is False and result["causal_max_diff"] > 1e-3
    assert math.isfinite(result["val_bpb"])


def test_wrong_output_shape_is_explained(result_file):
    class Tupled(Bigram):
        def forward(self, idx):
            return super().forward(idx), None

    with pytest.raises(ValueError, match=r"logits of shape \(B, T, 256\)"):
        prepare.evaluate_bpb(Tupled(), 8)


def test_no_result_path_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTORESEARCH_DATA", "stdlib")
    monkeypatch.chdir(tmp_path)
    prepare.evaluate_bpb(Uniform(), 32)
    assert list(tmp_path.iterdir()) == []
