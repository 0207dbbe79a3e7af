"""
Frozen harness for autoresearch-bot: constants, data, tokenizer, evaluation.
Experiments edit train.py only; this file is hashed and must not change between runs that are compared.

API used by train.py:
    MAX_SEQ_LEN, TIME_BUDGET, EVAL_TOKENS, VOCAB_SIZE   constants (chosen by device and environment)
    get_device() -> "cuda" | "cpu"
    run_seed() -> int                                    the run's seed (train.py has no seed of its own)
    make_dataloader(split, batch_size, seq_len, device)  infinite iterator of (x, y) int64 (B, T), y = x shifted by one
    evaluate_bpb(model, batch_size) -> float             val bits per byte, computed here from model(x) logits,
                                                         plus a causality probe; writes the result JSON

Environment (all optional, read when needed so that tests can change them):
    AUTORESEARCH_BUDGET_SECONDS  training seconds (default 300 on CUDA, 20 on CPU)
    AUTORESEARCH_SEED            run seed (default 42)
    AUTORESEARCH_RESULT_PATH     where evaluate_bpb writes its JSON result (unset: nothing is written)
    AUTORESEARCH_DATA            auto | stdlib | parquet[:<base-url-or-dir>] | text:<glob>
                                 (auto = parquet with CUDA, stdlib without)
    AUTORESEARCH_CACHE_DIR       downloads (default ~/.cache/autoresearch-bot)

`python prepare.py` loads (and for parquet, downloads) the data once and prints its fingerprint.
"""

import glob
import hashlib
import json
import math
import os
import sys
import sysconfig
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Environment (read lazily, in functions)
# ---------------------------------------------------------------------------


def get_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def _env_number(name, default, kind):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}; set it to a number or unset it") from None


def run_seed():
    return _env_number("AUTORESEARCH_SEED", 42, int)


def time_budget():
    budget = _env_number("AUTORESEARCH_BUDGET_SECONDS", 300.0 if torch.cuda.is_available() else 20.0, float)
    if not budget > 0:
        raise ValueError(f"AUTORESEARCH_BUDGET_SECONDS must be positive, got {budget}")
    return budget


def data_spec():
    spec = os.environ.get("AUTORESEARCH_DATA", "").strip() or "auto"
    if spec == "auto":
        spec = "parquet" if torch.cuda.is_available() else "stdlib"
    return spec


def cache_dir():
    return Path(os.environ.get("AUTORESEARCH_CACHE_DIR", "").strip() or "~/.cache/autoresearch-bot").expanduser()


def result_path():
    return os.environ.get("AUTORESEARCH_RESULT_PATH", "").strip() or None


# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

_ON_CUDA = torch.cuda.is_available()
MAX_SEQ_LEN = 2048 if _ON_CUDA else 128  # context length in tokens (= bytes); fixed per device
TIME_BUDGET = time_budget()  # training seconds, excluding start-up and evaluation
EVAL_TOKENS = 40 * 2**19 if _ON_CUDA else 2**16  # val tokens scored (CPU: ~1 s on 2 cores)
# Byte-level tokenizer for every source: token = byte, so bits per token = bits per byte and the
# metric does not depend on a tokenizer. A trained BPE tokenizer is a later issue.
VOCAB_SIZE = 256
DOC_SEPARATOR = b"\x00"  # marks file/document boundaries in the byte stream
VAL_FRACTION = 0.08  # share of files (chosen by hash of the name) held out for validation

# parquet source, as karpathy/autoresearch lays it out: shard_NNNNN.parquet, last shard = validation
PARQUET_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
PARQUET_TRAIN_SHARDS = 4  # shards 0..3 train; small on purpose (smoke runs); raise for long GPU runs
PARQUET_VAL_SHARD = 6542  # the dataset's last shard, pinned as validation

# ---------------------------------------------------------------------------
# Data sources: each gives (train bytes, val bytes)
# ---------------------------------------------------------------------------


class Corpus(NamedTuple):
    train: np.ndarray  # uint8 token ids
    val: np.ndarray
    source: str
    fingerprint: str  # sha256 of train+val bytes (first 12 hex) and the byte count


def _is_val(name):
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < VAL_FRACTION


def _split_files(named_paths):
    """Split files between train and val by a hash of their name; both sides get at least one file."""
    if len(named_paths) == 1:  # one file: its last 10% of bytes is validation
        data = Path(named_paths[0][1]).read_bytes()
        cut = int(len(data) * 0.9)
        return data[:cut], data[cut:]
    val = [(n, p) for n, p in named_paths if _is_val(n)]
    train = [(n, p) for n, p in named_paths if not _is_val(n)]
    if not val:
        val, train = train[-1:], train[:-1]
    if not train:
        train, val = val[:1], val[1:]
    read = lambda items: DOC_SEPARATOR.join(Path(p).read_bytes() for _, p in items)
    return read(train), read(val)


def _stdlib_files():
    # The Python standard library's own source: present offline on every machine that runs
    # Python, identical for a given Python version, and real text (~10 MB, ~670 files). Left out:
    # tests, IDLE, installed packages, build configuration (machine-specific paths) and pydoc_data
    # (generated help text: one 750 KB file would dominate whichever split it fell in).
    root = Path(sysconfig.get_paths()["stdlib"])
    skip_dirs = {"site-packages", "dist-packages", "test", "tests", "idlelib", "pydoc_data", "__pycache__"}
    named = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs and not d.startswith("config-")]
        for fn in filenames:
            if fn.endswith(".py") and not fn.startswith("_sysconfigdata"):
                path = Path(dirpath, fn)
                named.append((path.relative_to(root).as_posix(), path))
    if not named:
        raise RuntimeError(f"no .py files under {root}; this Python has no stdlib source: use AUTORESEARCH_DATA=text:<glob>")
    return sorted(named)


def _text_bytes(pattern):
    paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    if not paths:
        raise ValueError(f"AUTORESEARCH_DATA=text:{pattern} matched no files (relative to {os.getcwd()}); "
                         "fix the glob, e.g. text:data/**/*.txt")
    return _split_files([(p, p) for p in paths])


def _download(url, dest):
    import urllib.request  # only the parquet source downloads

    tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}")
    for attempt in range(3):
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
            os.replace(tmp, dest)  # atomic: concurrent runs never see a partial shard
            return
        except OSError as e:  # URLError and HTTPError are OSErrors
            tmp.unlink(missing_ok=True)
            if attempt == 2 or 400 <= getattr(e, "code", 500) < 500:  # retry only what may be transient
                raise RuntimeError(f"could not download {url}: {e}. Download the shards yourself and point at "
                                   "the folder: AUTORESEARCH_DATA=parquet:/path/to/dir (the last *.parquet by "
                                   "name is validation)") from e
            time.sleep(2**attempt)


def _parquet_bytes(location):
    if location.startswith(("http://", "https://")):
        base = location.rstrip("/") + "/"
        dest = cache_dir() / "shards" / hashlib.sha256(base.encode()).hexdigest()[:10]
        dest.mkdir(parents=True, exist_ok=True)
        indices = list(range(PARQUET_TRAIN_SHARDS)) + [PARQUET_VAL_SHARD]
        paths = [dest / f"shard_{i:05d}.parquet" for i in indices]
        for path in paths:
            if not path.exists():  # downloaded once, then reused
                print(f"downloading {base}{path.name}", file=sys.stderr, flush=True)
                _download(base + path.name, path)
    else:
        folder = Path(location).expanduser()
        paths = sorted(folder.glob("*.parquet"))
        if len(paths) < 2:
            raise ValueError(f"AUTORESEARCH_DATA=parquet:{location} needs a folder with at least two *.parquet "
                             f"files (train shards, then a validation shard last by name); found {len(paths)}")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError("the parquet data source needs pyarrow: pip install pyarrow "
                           "(or use AUTORESEARCH_DATA=stdlib)") from None

    def read(path):
        docs = []
        for batch in pq.ParquetFile(path).iter_batches(columns=["text"]):
            docs.extend(s.encode("utf-8") for s in batch.column(0).to_pylist() if s)
        return DOC_SEPARATOR.join(docs)

    return DOC_SEPARATOR.join(read(p) for p in paths[:-1]), read(paths[-1])


_CORPORA = {}


def load_corpus():
    """The current source's train and val bytes (loaded once per process and source)."""
    spec = data_spec()
    key = (spec, str(cache_dir()), os.getcwd())  # a text glob may be relative to the working directory
    if key in _CORPORA:
        return _CORPORA[key]
    kind, _, arg = spec.partition(":")
    if kind == "stdlib" and not arg:
        train, val = _split_files(_stdlib_files())
    elif kind == "parquet":
        train, val = _parquet_bytes(arg or PARQUET_URL)
    elif kind == "text" and arg:
        train, val = _text_bytes(arg)
    else:
        raise ValueError(f"unknown AUTORESEARCH_DATA={spec!r}: use auto, stdlib, parquet, "
                         "parquet:<base-url-or-dir> or text:<glob>")
    for name, part in (("train", train), ("val", val)):
        if len(part) < MAX_SEQ_LEN + 1:
            raise ValueError(f"the {name} split of AUTORESEARCH_DATA={spec} has {len(part)} bytes, fewer than one "
                             f"sequence ({MAX_SEQ_LEN + 1}); add more text or use AUTORESEARCH_DATA=stdlib")
    digest = hashlib.sha256(train)
    digest.update(val)
    fingerprint = f"{digest.hexdigest()[:12]}-{len(train) + len(val)}"
    as_array = lambda b: np.frombuffer(bytearray(b), dtype=np.uint8)  # writable copy
    _CORPORA[key] = Corpus(as_array(train), as_array(val), spec, fingerprint)
    return _CORPORA[key]


# ---------------------------------------------------------------------------
# Dataloader
# ---------------------------------------------------------------------------


def make_dataloader(split, batch_size, seq_len, device):
    """Infinite (x, y) batches at random offsets, from a generator seeded by run_seed() and split."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    data = getattr(load_corpus(), split)
    if len(data) < seq_len + 1:
        raise ValueError(f"the {split} split has {len(data)} bytes, fewer than one sequence of {seq_len + 1}; "
                         "use a shorter seq_len or more data")
    tokens = torch.from_numpy(data).to(device)  # the whole split on the device: 1 byte per token
    generator = torch.Generator().manual_seed(run_seed() * 2 + (split == "val"))
    span = torch.arange(seq_len + 1, device=device)
    n_starts = len(data) - seq_len
    while True:
        starts = torch.randint(n_starts, (batch_size, 1), generator=generator).to(device)
        rows = tokens[starts + span].long()
        yield rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


# ---------------------------------------------------------------------------
# Evaluation: bits per byte and a causality probe, computed here from logits
# ---------------------------------------------------------------------------


def _logits(model, x):
    out = model(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (*x.shape, VOCAB_SIZE):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"evaluate_bpb needs model(x) to return logits of shape (B, T, {VOCAB_SIZE}); got {got}")
    return out


def _causality_probe(model, row, batch_size, device):
    """Change every token from position p on; the logits before p must not move."""
    p = MAX_SEQ_LEN // 2
    x = row[:MAX_SEQ_LEN]
    changed = x.clone()
    changed[p:] = (x[p:] + 97) % VOCAB_SIZE  # every future token differs
    if batch_size >= 2:  # same shape as the evaluation batches: no recompilation
        batch = x.repeat(batch_size, 1)
        batch[1] = changed
        out = _logits(model, batch.to(device))
        a, b = out[0], out[1]
    else:
        a, b = _logits(model, x[None].to(device))[0], _logits(model, changed[None].to(device))[0]
    low_precision = a.dtype in (torch.bfloat16, torch.float16) or torch.is_autocast_enabled(torch.device(device).type)
    a, b = a[:p].float(), b[:p].float()
    max_diff = (a - b).abs().max().item()
    # Identical prefixes run identical kernels, so a causal model differs by ~0; the tolerance only
    # absorbs rounding (a few bf16 ulps under autocast), scaled by the logits' magnitude.
    tolerance = (1e-2 if low_precision else 1e-4) * max(1.0, a.abs().max().item())
    return max_diff <= tolerance, max_diff, tolerance


def write_result(result):
    """Write the result JSON atomically to AUTORESEARCH_RESULT_PATH (if set); return the path."""
    path = result_path()
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path


@torch.no_grad()
def evaluate_bpb(model, batch_size):
    """Bits per byte on a fixed slice of val (EVAL_TOKENS tokens), from model(x) logits (B, T, VOCAB_SIZE)."""
    t0 = time.time()
    corpus = load_corpus()
    val, T = corpus.val, MAX_SEQ_LEN
    device = next(iter(model.parameters()), torch.empty(0, device=get_device())).device
    n_seq = min(EVAL_TOKENS // T, (len(val) - 1) // T)
    if n_seq * T < EVAL_TOKENS:
        print(f"warning: val split holds only {n_seq * T} of EVAL_TOKENS={EVAL_TOKENS}", file=sys.stderr)
    stride = (len(val) - 1) // n_seq  # sequences spread evenly over the val split, not overlapping
    rows = torch.from_numpy(np.stack([val[i * stride:i * stride + T + 1] for i in range(n_seq)]).astype(np.int64))
    was_training = model.training
    model.eval()
    try:
        nats = 0.0
        for i in range(0, n_seq, batch_size):
            chunk = rows[i:i + batch_size]
            n = len(chunk)
            if n < batch_size:  # pad the last batch (padding is not scored) to keep one shape
                chunk = torch.cat([chunk, chunk[:1].expand(batch_size - n, -1)])
            chunk = chunk.to(device)
            logits = _logits(model, chunk[:, :-1])[:n]
            nll = F.cross_entropy(logits.double().reshape(-1, VOCAB_SIZE), chunk[:n, 1:].reshape(-1), reduction="sum")
            nats += nll.item()
        causal, max_diff, tolerance = _causality_probe(model, rows[0], batch_size, device)
    finally:
        model.train(was_training)
    val_bpb = nats / (math.log(2) * n_seq * T)  # byte-level: one token is one byte
    write_result({
        "val_bpb": val_bpb if math.isfinite(val_bpb) else None,
        "causal": causal,
        "causal_max_diff": max_diff if math.isfinite(max_diff) else None,
        "eval_tokens": n_seq * T,
        "eval_seconds": round(time.time() - t0, 3),
        "harness_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "data_source": corpus.source,
        "data_fingerprint": corpus.fingerprint,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else device.type,
        "seed": run_seed(),
        "seq_len": T,
        "time_budget": time_budget(),
    })
    if not math.isfinite(max_diff):
        raise RuntimeError("the model's logits are not finite (NaN/inf) on validation data; the run is invalid")
    if not causal:
        raise RuntimeError(f"non-causal model: changing tokens from position {MAX_SEQ_LEN // 2} on changed earlier "
                           f"logits by {max_diff:.3g} (tolerance {tolerance:.3g}); the model sees the future, so "
                           "val_bpb is invalid. Use is_causal=True attention and mix nothing across time.")
    return val_bpb


if __name__ == "__main__":  # python prepare.py: fetch and check the data once, e.g. while building an image
    corpus = load_corpus()
    print(f"data: {corpus.source} | fingerprint: {corpus.fingerprint} | train: {len(corpus.train):,} bytes | "
          f"val: {len(corpus.val):,} bytes")
