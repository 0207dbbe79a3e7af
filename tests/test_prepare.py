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

RESULT_KEYS = {"val_bpb", "causal", "causal_rows_failed", "causal_rows_checked", "causal_max_diff", "eval_tokens",
               "refusal", "load_seconds", "eval_seconds", "harness_sha256", "data_source", "data_fingerprint",
               "device", "seq_len", "batch_size", "graph_ops", "graph_bytes", "eval_bytes", "tokenizer", "vocab_size"}


pytestmark = pytest.mark.usefixtures("clean_harness_env")


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
    assert prepare.handoff_path() is None and prepare.train_data_path() is None
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
    # validation = whole packages nothing imports, so the sandbox can hide their files
    assert b"xmlrpc" in corpus.val.tobytes()[:2_000_000] or b"tkinter" in corpus.val.tobytes()
    assert corpus.hide and all(any(p.endswith("/" + pkg) for pkg in prepare.STDLIB_VAL_PACKAGES) for p in corpus.hide)


def test_no_stdlib_validation_package_is_imported_by_training():
    """If torch, numpy or train.py ever imported one, hiding it would break the train phase."""
    code = ("import os, sys, runpy; os.environ['AUTORESEARCH_BUDGET_SECONDS'] = '0.5'; sys.path.insert(0, '.');\n"
            "sys.argv = ['train.py']; runpy.run_path('train.py', run_name='__main__')\n"
            "import prepare; print('IMPORTED', sorted(m for m in sys.modules if m.split('.')[0] in prepare.STDLIB_VAL_PACKAGES))")
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "AUTORESEARCH_DATA": "stdlib", "CUDA_VISIBLE_DEVICES": ""})
    assert "IMPORTED []" in done.stdout, done.stdout[-800:] + done.stderr[-800:]


def test_materialize_writes_the_splits_and_what_to_hide(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTORESEARCH_DATA", "stdlib")
    meta = prepare.materialize(tmp_path / "data")
    corpus = prepare.load_corpus()
    assert (tmp_path / "data/train.bin").read_bytes() == corpus.train.tobytes()
    assert (tmp_path / "data/val.bin").read_bytes() == corpus.val.tobytes()
    assert meta == json.loads((tmp_path / "data/meta.json").read_text())
    assert meta["fingerprint"] == corpus.fingerprint and meta["hide"] == list(corpus.hide)


def test_the_train_phase_sees_the_training_split_only(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTORESEARCH_DATA", "stdlib")
    prepare.materialize(tmp_path / "data")
    monkeypatch.setattr(prepare, "_CORPORA", {})
    monkeypatch.setenv("AUTORESEARCH_TRAIN_DATA", str(tmp_path / "data/train.bin"))
    corpus = prepare.load_corpus()
    assert corpus.val is None and len(corpus.train) > 2_000_000 and corpus.source == "stdlib"
    assert next(prepare.make_dataloader("train", 2, 16, "cpu"))[0].shape == (2, 16)
    with pytest.raises(ValueError, match="validation split is not available"):
        next(prepare.make_dataloader("val", 2, 16, "cpu"))


def test_text_glob_source_splits_by_file_disjointly(monkeypatch, tmp_path):
    markers = write_files(tmp_path / "data", 40)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTORESEARCH_DATA", "text:data/**/*.txt")
    corpus = prepare.load_corpus()
    train, val = corpus.train.tobytes(), corpus.val.tobytes()
    assert all((m in train) != (m in val) for m in markers)  # every file in exactly one split
    assert any(m in val for m in markers) and any(m in train for m in markers)
    assert corpus.source == "text:data/**/*.txt"
    hidden = {Path(p).read_text()[:10].encode() for p in corpus.hide}
    assert hidden == {m for m in markers if m in val}  # exactly the validation files are hidden


def test_text_source_with_one_file_holds_out_its_tail(monkeypatch, tmp_path):
    data = bytes(range(256)) * 40
    (tmp_path / "one.txt").write_bytes(data)
    monkeypatch.setenv("AUTORESEARCH_DATA", f"text:{tmp_path}/*.txt")
    corpus = prepare.load_corpus()
    cut = int(len(data) * 0.9)
    assert corpus.train.tobytes() == data[:cut] and corpus.val.tobytes() == data[cut:]
    assert corpus.hide == (str((tmp_path / "one.txt").resolve()),)  # the train phase gets train.bin instead


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


def text_of(corpus, ids):
    """The text BPE ids stand for (the parquet source is tokenized; see tests/test_bpe.py)."""
    return prepare.load_tokenizer(corpus.tokenizer).decode([int(i) for i in ids], skip_special_tokens=True)


def test_parquet_shards_download_once_and_give_batches(monkeypatch, tmp_path, shard_server):
    pytest.importorskip("tokenizers")
    base, requests = shard_server
    monkeypatch.setenv("AUTORESEARCH_DATA", f"parquet:{base}")
    corpus = prepare.load_corpus()
    assert sorted(requests) == ["/shard_00000.parquet", "/shard_00001.parquet", "/shard_06542.parquet"]
    train, val = text_of(corpus, corpus.train), text_of(corpus, corpus.val)
    assert "train shard 1 doc 29" in train and "val doc" not in train
    assert "val doc 29" in val and "train" not in val
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
    pytest.importorskip("tokenizers")
    varied = " ".join(f"w{i}" for i in range(400))  # not compressible to less than a sequence of tokens
    write_parquet(tmp_path / "a.parquet", ["alpha " + varied])
    write_parquet(tmp_path / "b.parquet", ["omega " + varied])
    monkeypatch.setenv("AUTORESEARCH_DATA", f"parquet:{tmp_path}")
    corpus = prepare.load_corpus()
    assert text_of(corpus, corpus.train).startswith("alpha") and text_of(corpus, corpus.val).startswith("omega")
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
def stdlib(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTORESEARCH_DATA", "stdlib")
    monkeypatch.setenv("AUTORESEARCH_SEED", "5")
    prepare.materialize(tmp_path / "data")
    return tmp_path


def hand_over(model, folder, batch_size, monkeypatch):
    """The train phase's side: evaluate_bpb writes the graph and returns nan."""
    monkeypatch.setenv("AUTORESEARCH_HANDOFF", str(folder / "model.graph"))
    assert math.isnan(prepare.evaluate_bpb(model, batch_size))
    monkeypatch.delenv("AUTORESEARCH_HANDOFF")
    return folder / "model.graph"


def evaluate(graph, folder):
    return prepare.evaluate_graph(graph, folder / "data", folder / "result.json")


def test_uniform_logits_score_exactly_eight_bits(stdlib, monkeypatch):
    result = evaluate(hand_over(Uniform(), stdlib, 16, monkeypatch), stdlib)
    assert result["val_bpb"] == pytest.approx(8.0, abs=1e-9) and result["causal"] is True
    assert prepare.evaluate_bpb(Uniform(), 16) == pytest.approx(8.0, abs=1e-9)  # by hand: the same scoring


def test_a_handed_over_graph_scores_what_the_model_scores(stdlib, monkeypatch):
    model = Bigram()
    graph = hand_over(model, stdlib, 7, monkeypatch)  # 7 does not divide the rows: the last batch is padded
    assert model.training  # train mode restored
    result = evaluate(graph, stdlib)
    assert set(result) == RESULT_KEYS
    assert json.loads((stdlib / "result.json").read_text()) == result
    assert result["causal"] is True and result["causal_max_diff"] == 0.0 and result["refusal"] is None
    assert result["causal_rows_checked"] == prepare.EVAL_TOKENS // prepare.MAX_SEQ_LEN
    assert result["eval_tokens"] == prepare.EVAL_TOKENS and result["seq_len"] == prepare.MAX_SEQ_LEN
    assert result["harness_sha256"] == hashlib.sha256((ROOT / "prepare.py").read_bytes()).hexdigest()
    assert result["data_source"] == "stdlib" and result["data_fingerprint"] == prepare.load_corpus().fingerprint
    assert (result["device"], result["batch_size"]) == ("cpu", 7)
    by_hand = prepare.evaluate_bpb(model, 7)
    assert result["val_bpb"] == pytest.approx(by_hand, rel=1e-9)  # the graph computes what the model does
    assert evaluate(graph, stdlib)["val_bpb"] == pytest.approx(result["val_bpb"], rel=1e-12)  # order is random, sum is not


@pytest.mark.parametrize("leak", ["mix_future", "peek"])
@pytest.mark.parametrize("batch_size", [1, 8])
def test_a_model_that_sees_the_future_is_refused(stdlib, monkeypatch, leak, batch_size):
    result = evaluate(hand_over(Bigram(**{leak: True}), stdlib, batch_size, monkeypatch), stdlib)
    assert result["causal"] is False and result["causal_max_diff"] > 1e-3
    assert result["causal_rows_failed"] > result["causal_rows_checked"] // 2  # caught on the scored rows themselves
    assert "non-causal" in result["refusal"] and math.isfinite(result["val_bpb"])
    with pytest.raises(RuntimeError, match="non-causal"):
        prepare.evaluate_bpb(Bigram(**{leak: True}), batch_size)


class PeekExceptAt(Bigram):
    """Sees token t + 1 everywhere except at one position: the old single probe's blind spot."""

    def __init__(self, spared):
        super().__init__()
        self.spared = spared

    def forward(self, idx):
        h = self.emb(idx)
        future = torch.roll(h, shifts=-1, dims=1)
        mask = torch.ones(idx.shape[1], 1)
        mask[self.spared - 1:self.spared + 1] = 0
        return self.head(h + future * mask)


def test_a_leak_that_spares_one_position_is_caught(stdlib, monkeypatch):
    result = evaluate(hand_over(PeekExceptAt(prepare.MAX_SEQ_LEN // 2), stdlib, 8, monkeypatch), stdlib)
    assert result["causal"] is False and result["causal_rows_failed"] > 100


def test_wrong_output_shape_is_explained(stdlib, monkeypatch):
    class Tupled(Bigram):
        def forward(self, idx):
            return super().forward(idx), None

    with pytest.raises(ValueError, match=r"logits of shape \(B, T, 256\)"):
        hand_over(Tupled(), stdlib, 8, monkeypatch)


@pytest.mark.parametrize("content, message", [
    (b"\x80\x04K\x01.", "wrong magic"),  # a pickle
    (b"PK\x03\x04" + b"\0" * 64, "wrong magic"),  # a zip, as torch.export.save writes
    (b"", "wrong magic"),
])
def test_files_that_are_not_graphs_are_refused_unread(tmp_path, content, message):
    (tmp_path / "model.graph").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        prepare.GraphProgram(tmp_path / "model.graph")


def test_graph_tampering_is_refused(stdlib, monkeypatch):
    graph = hand_over(Bigram(), stdlib, 4, monkeypatch)
    raw = graph.read_bytes()
    start = len(prepare.GRAPH_MAGIC) + 8
    size = int.from_bytes(raw[len(prepare.GRAPH_MAGIC):start], "little")
    header = json.loads(raw[start:start + size])

    def write(changed):
        text = json.dumps(changed).encode()
        graph.write_bytes(prepare.GRAPH_MAGIC + len(text).to_bytes(8, "little") + text + raw[start + size:])

    for op, message in [("aten.from_file.default", "does not run"), ("aten.empty.memory_format", "does not run"),
                        ("builtins.eval.default", "does not run"), ("torch.os.system", "")]:
        write(dict(header, nodes=[dict(header["nodes"][0], op=op)] + header["nodes"][1:]))
        with pytest.raises((ValueError, AttributeError)):
            prepare.GraphProgram(graph)
    write(dict(header, tensors=[dict(header["tensors"][0], offset=10**12)] + header["tensors"][1:]))
    with pytest.raises(ValueError, match="does not fit"):
        prepare.GraphProgram(graph)
    write(dict(header, tensors=[dict(header["tensors"][0], device="meta")] + header["tensors"][1:]))
    with pytest.raises(ValueError, match="only cpu and cuda"):
        prepare.GraphProgram(graph)
    write(dict(header, tensors=[dict(header["tensors"][0], dtype="object")] + header["tensors"][1:]))
    with pytest.raises(KeyError):
        prepare.GraphProgram(graph)


def test_each_call_gets_fresh_weights_so_no_call_remembers_another(stdlib, monkeypatch):
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", torch.zeros(1))
            self.emb = nn.Embedding(prepare.VOCAB_SIZE, prepare.VOCAB_SIZE)

        def forward(self, idx):
            self.calls.add_(1)  # recorded as an in-place op on a buffer
            return self.emb(idx) * self.calls

    program = prepare.GraphProgram(hand_over(Counter(), stdlib, 2, monkeypatch))
    x = torch.zeros(2, prepare.MAX_SEQ_LEN, dtype=torch.int64)
    assert torch.equal(program(x), program(x))


def test_by_hand_without_a_result_channel_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTORESEARCH_DATA", "stdlib")
    monkeypatch.chdir(tmp_path)
    prepare.evaluate_bpb(Uniform(), 32)
    assert list(tmp_path.iterdir()) == []


class Offset(Bigram):
    """Peeks at token t + 1 under a huge constant offset, which softmax ignores: a tolerance scaled by
    the logits' size would let the leak through."""

    def forward(self, idx):
        h = self.emb(idx)
        leak = torch.nn.functional.one_hot(torch.roll(idx, -1, 1), prepare.VOCAB_SIZE).float() * 60
        return self.head(h) + leak + 1e6


class MinusInfinity(Bigram):
    """-inf everywhere but the next token: differences of -inf are NaN, which compare as 'no change'."""

    def forward(self, idx):
        nxt = torch.nn.functional.one_hot(torch.roll(idx, -1, 1), prepare.VOCAB_SIZE).bool()
        return torch.where(nxt, torch.zeros(()), torch.full((), float("-inf")))


@pytest.mark.parametrize("model, reason", [(Offset, "non-causal"), (MinusInfinity, "not all finite")])
def test_leaks_that_fool_a_naive_comparison_are_refused(stdlib, monkeypatch, model, reason):
    result = evaluate(hand_over(model(), stdlib, 8, monkeypatch), stdlib)
    assert result["refusal"] and reason in result["refusal"]


def test_a_view_beyond_its_memory_is_caught():
    small = torch.zeros(16)
    beyond = torch.ops.aten._reshape_alias(small, [240], [1])  # no bounds check of its own
    assert not prepare._within_storage(beyond)
    assert prepare._within_storage(small[2:9:3]) and prepare._within_storage(small.view(4, 4).t())
    assert prepare._within_storage(torch.zeros(0, 5))
    with pytest.raises(ValueError, match="does not run"):
        prepare.GraphProgram._op("aten._reshape_alias.default")
