"""
Frozen harness for autoresearch-bot: constants, data, tokenizer, evaluation.
Experiments edit train.py only; this file is hashed and must not change between runs that are compared.

One experiment is two phases (run by gpu_jobs/job.py):
  train (untrusted)  train.py runs in a sandbox that holds the training split only. Its last call,
                     evaluate_bpb(model, batch_size), hands the model over: one forward pass is traced
                     into a graph of ATen operations and written, with the weights, to a plain file.
  eval  (trusted)    `python prepare.py evaluate GRAPH DATA_DIR RESULT` in a fresh process that imports
                     no experiment code: it loads the graph (JSON and raw tensor bytes; nothing in the
                     file can run code), computes bits per byte on the validation split, and checks on
                     every evaluated row, at a random cut, that no logit depends on a later token.

API used by train.py:
    MAX_SEQ_LEN, TIME_BUDGET, EVAL_TOKENS, VOCAB_SIZE   constants (chosen by device and environment; VOCAB_SIZE by
                                                         the data source: 8192 for parquet's BPE, 256 for bytes)
    peak_flops(device_name) -> float | None               dense bf16 peak FLOP/s of a CUDA device, for MFU
    GPU_PROFILE                                          True on CUDA (and when the harness estimates GPU
                                                         memory without a GPU): train.py picks its GPU sizes
    get_device() -> "cuda" | "cpu"
    run_seed() -> int                                    the run's seed (train.py has no seed of its own)
    make_dataloader("train", batch_size, seq_len, device) infinite iterator of (x, y) int64 (B, T), y = x shifted
    evaluate_bpb(model, batch_size) -> float             under the job: hands the model to the harness and returns
                                                         nan (the job measures val_bpb afterwards); run by hand:
                                                         scores the model here, with the same checks

The model must map int64 tokens (B, T) to logits (B, T, VOCAB_SIZE) with ATen operations only (no custom
ops, no Python callbacks inside forward); what it computes for the traced input shape is what is scored.

Environment (all optional, read when needed so that tests can change them):
    AUTORESEARCH_BUDGET_SECONDS  training seconds (default 300 on CUDA, 20 on CPU)
    AUTORESEARCH_BUDGET_STEPS    if set: train this many counted steps instead (`budget_steps:`)
    AUTORESEARCH_SEED            run seed (default 42)
    AUTORESEARCH_DATA            auto | stdlib | parquet[:<base-url-or-dir>] | text:<glob>
                                 (auto = parquet with CUDA, stdlib without)
    AUTORESEARCH_CACHE_DIR       downloads (default ~/.cache/autoresearch-bot)
    set by the job in the train phase only:
    AUTORESEARCH_TRAIN_DATA      the training split's tokens (the validation split is not there)
    AUTORESEARCH_HANDOFF         where evaluate_bpb writes the model's graph

Tokenizers. stdlib and text:<glob> are byte-level (token = byte, uint8). parquet (karpathy's climbmix, as
karpathy/autoresearch uses it) gets autoresearch's tokenizer: byte-level BPE, 8192 ids in all (specials
included), GPT-4's split pattern with numbers in groups of 1-2 digits, and a BOS token starting every
document. It is trained once on (a bounded prefix of) the training split only, deterministically, and
cached with the tokenized splits under AUTORESEARCH_CACHE_DIR/bpe/<data fingerprint>-<tokenizer config>/.
Bits per byte is then total nats / (ln 2 x UTF-8 bytes of the scored targets), special tokens left out of
both sums, so a BPE model's val_bpb is comparable with autoresearch's.

`python prepare.py` loads (and for parquet, downloads and tokenizes) the data once and prints its fingerprint;
`python prepare.py materialize DIR` writes DIR/train.bin, DIR/val.bin and DIR/meta.json for the job, and
for BPE DIR/token_bytes.bin (int32 little-endian: each id's UTF-8 length, 0 for specials) and
DIR/tokenizer.json (the HF `tokenizers` file). meta.json names the tokenizer, vocab_size and dtype.
"""

import glob
import hashlib
import json
import math
import os
import struct
import sys
import sysconfig
import time
import weakref
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

if tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) < (2, 5):
    raise ImportError(f"torch {torch.__version__} is too old for this harness and train.py (F.rms_norm needs 2.4, "
                      "flex_attention 2.5): pip install 'torch>=2.5'")

# ---------------------------------------------------------------------------
# Environment (read lazily, in functions)
# ---------------------------------------------------------------------------


def get_device():
    if preflight_path():  # memory preflight: fake CPU tensors stand in for the GPU's
        return "cpu"
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


def tokenizer_kind(spec):
    """'bpe' for the parquet source (autoresearch's tokenizer), 'bytes' for every other source."""
    return "bpe" if spec.partition(":")[0] == "parquet" else "bytes"


def _vocab_size():
    """VOCAB_SIZE without reading any data: from meta.json beside the train file in the train phase,
    else from the data spec alone (auto = parquet on the GPU profile)."""
    if train_data_path():
        meta = Path(train_data_path()).with_name("meta.json")
        return int(json.loads(meta.read_text()).get("vocab_size", 256)) if meta.exists() else 256
    spec = os.environ.get("AUTORESEARCH_DATA", "").strip() or "auto"
    if spec == "auto":
        spec = "parquet" if GPU_PROFILE else "stdlib"
    return BPE_VOCAB_SIZE if tokenizer_kind(spec) == "bpe" else 256


def cache_dir():
    return Path(os.environ.get("AUTORESEARCH_CACHE_DIR", "").strip() or "~/.cache/autoresearch-bot").expanduser()


def train_data_path():
    return os.environ.get("AUTORESEARCH_TRAIN_DATA", "").strip() or None


def handoff_path():
    return os.environ.get("AUTORESEARCH_HANDOFF", "").strip() or None


def preflight_path():
    return os.environ.get("AUTORESEARCH_PREFLIGHT", "").strip() or None


# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

_ON_CUDA = torch.cuda.is_available()
GPU_PROFILE = _ON_CUDA or bool(preflight_path())  # which of train.py's size profiles runs
MAX_SEQ_LEN = 2048 if GPU_PROFILE else 128  # context length in tokens; fixed per profile
TIME_BUDGET = time_budget()  # training seconds, excluding start-up and evaluation
STEP_BUDGET = _env_number("AUTORESEARCH_BUDGET_STEPS", 0, int) or None  # counted steps instead, when set
if preflight_path():  # the memory preflight: a few steps (fake ones cost milliseconds), then evaluate_bpb
    TIME_BUDGET, STEP_BUDGET = 1.0, 2
# val tokens scored (CPU: 256 rows, each scored twice for the causality check)
EVAL_TOKENS = 40 * 2**19 if GPU_PROFILE else 2**15
# Byte sources (stdlib, text): token = byte, 256 ids. parquet: a byte-level BPE of 8192 ids (specials
# included), as karpathy/autoresearch, so its val_bpb is comparable with autoresearch's published numbers.
BPE_VOCAB_SIZE = 8192
VOCAB_SIZE = _vocab_size()  # what the model's embedding and head are sized for
DOC_SEPARATOR = b"\x00"  # marks file/document boundaries in the byte stream
VAL_FRACTION = 0.08  # text source: share of files (chosen by hash of the name) held out for validation
# stdlib source: validation is these packages, which neither Python, torch, numpy nor this harness
# imports, so the sandbox can hide them from the train phase without breaking an import (~8% of bytes).
STDLIB_VAL_PACKAGES = ("tkinter", "lib2to3", "xmlrpc", "wsgiref", "turtledemo", "curses", "dbm", "sqlite3")
MAX_EVAL_BATCH = 4096  # largest batch a handed-over graph may be traced with
# evaluate_bpb scores (and hands over) at most this many rows per forward pass, whatever batch train.py
# trains with: the evaluation's memory grows with batch x context x vocabulary (float32 logits, twice
# for the causality probe), and 32 rows of 2048 tokens keep a GPU busy.
EVAL_BATCH_SIZE = 32

# parquet source, as karpathy/autoresearch lays it out: shard_NNNNN.parquet, last shard = validation
PARQUET_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
PARQUET_TRAIN_SHARDS = 4  # shards 0..3 train; small on purpose (smoke runs); raise for long GPU runs
PARQUET_VAL_SHARD = 6542  # the dataset's last shard, pinned as validation

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, for MFU. Matched in order
# against torch.cuda.get_device_name(), so the more specific names come first.
PEAK_BF16_FLOPS = (
    ("H100 NVL", 835e12), ("H100 PCIe", 756e12), ("H100", 989.5e12),  # "H100 80GB HBM3" is the SXM part
    ("GH200", 989.5e12), ("H200 NVL", 835e12), ("H200", 989.5e12),
    ("B200", 2250e12), ("A100", 312e12), ("L40S", 362e12), ("A10G", 125e12), ("A10", 125e12),  # A10G: the A10's figure
    ("L40", 181e12), ("L4", 121e12),
)


def peak_flops(device_name):
    """Dense bf16 peak FLOP/s of a CUDA device by its name; None when unknown (MFU is then not printed)."""
    for key, flops in PEAK_BF16_FLOPS:
        if key.lower() in (device_name or "").lower():
            return flops
    return None

# ---------------------------------------------------------------------------
# Data sources: each gives (train bytes, val bytes)
# ---------------------------------------------------------------------------


class Corpus(NamedTuple):
    train: np.ndarray  # token ids: uint8 (bytes) or uint16 (BPE)
    val: np.ndarray  # None in the train phase: the validation split is not there
    source: str
    fingerprint: str  # sha256 of train+val bytes (first 12 hex) and the byte count
    hide: tuple = ()  # files holding validation text, which the job hides from the train phase
    vocab_size: int = 256
    token_bytes: np.ndarray = None  # BPE: each id's UTF-8 length (0 = special); None: every token is one byte
    tokenizer: str = None  # BPE: the tokenizer.json the splits were encoded with


def _is_val(name):
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < VAL_FRACTION


def _read(items):
    return DOC_SEPARATOR.join(Path(p).read_bytes() for _, p in items)


def _split_files(named_paths):
    """Split files between train and val by a hash of their name; both sides get at least one file.
    Returns (train bytes, val bytes, paths holding val text)."""
    if len(named_paths) == 1:  # one file: its last 10% of bytes is validation
        data = Path(named_paths[0][1]).read_bytes()
        cut = int(len(data) * 0.9)
        return data[:cut], data[cut:], (str(Path(named_paths[0][1]).resolve()),)
    val = [(n, p) for n, p in named_paths if _is_val(n)]
    train = [(n, p) for n, p in named_paths if not _is_val(n)]
    if not val:
        val, train = train[-1:], train[:-1]
    if not train:
        train, val = val[:1], val[1:]
    return _read(train), _read(val), tuple(str(Path(p).resolve()) for _, p in val)


def _stdlib_bytes():
    root = Path(sysconfig.get_paths()["stdlib"])
    named = _stdlib_files()
    is_val = lambda name: name.split("/")[0] in STDLIB_VAL_PACKAGES  # noqa: E731
    val, train = [i for i in named if is_val(i[0])], [i for i in named if not is_val(i[0])]
    if not val:
        raise RuntimeError(f"none of {', '.join(STDLIB_VAL_PACKAGES)} is under {root}: this Python's standard "
                           "library cannot give a validation split; use AUTORESEARCH_DATA=text:<glob>")
    # Every copy of these packages the train phase could read: this Python's, the system's, and any
    # Python bundled under /usr (an SDK's, say): every <...>/python3.N/<package> directory.
    hide = {str(root / name) for name in STDLIB_VAL_PACKAGES if (root / name).exists()}
    for top in sorted({"/usr", sys.base_prefix, sys.prefix}):
        for dirpath, dirnames, _ in os.walk(top):
            if os.path.basename(dirpath).startswith("python3"):
                hide.update(os.path.join(dirpath, d) for d in dirnames if d in STDLIB_VAL_PACKAGES)
            dirnames[:] = [d for d in dirnames if d not in STDLIB_VAL_PACKAGES and d != "__pycache__"]
    return _read(train), _read(val), tuple(sorted(hide))


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
        raise RuntimeError(f"no .py files under {root}; this Python has no stdlib source: "
                           "use AUTORESEARCH_DATA=text:<glob>")
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


def _parquet_paths(location):
    """The shards' paths, validation last (downloaded once for a URL)."""
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
    return paths


def _parquet_docs(path):
    """A shard's non-empty documents (its `text` column), in order."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError("the parquet data source needs pyarrow: pip install pyarrow "
                           "(or use AUTORESEARCH_DATA=stdlib)") from None
    docs = []
    for batch in pq.ParquetFile(path).iter_batches(columns=["text"]):
        docs.extend(s for s in batch.column(0).to_pylist() if s)
    return docs


def _joined(shards):
    """Shards of documents as one byte stream (DOC_SEPARATOR between documents and between shards)."""
    return DOC_SEPARATOR.join(DOC_SEPARATOR.join(doc.encode("utf-8") for doc in docs) for docs in shards)


# ---------------------------------------------------------------------------
# BPE tokenizer for the parquet source (karpathy/autoresearch's choices), trained on the train split only
# ---------------------------------------------------------------------------

BPE_SPECIAL_TOKENS = tuple(f"<|reserved_{i}|>" for i in range(4))  # ids 0-3, counted in BPE_VOCAB_SIZE
BPE_BOS = BPE_SPECIAL_TOKENS[0]  # starts every document
# GPT-4's split pattern with numbers in groups of 1-2 digits (autoresearch's choice) instead of 1-3
BPE_SPLIT_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|"""
                     r"""\s*[\r\n]|\s+(?!\S)|\s+""")
BPE_TRAIN_CHARS = 1_000_000_000  # tokenizer training reads at most this many characters of the train split
BPE_DOC_CHARS = 10_000  # and at most this many of one document (a long document would dominate the counts)
BPE_TRAININGS = 0  # tokenizers trained by this process (tests check that a cached one is reused)


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise RuntimeError("the parquet data source uses a BPE tokenizer, which needs HF tokenizers: pip install "
                           "tokenizers (or pip install 'autoresearch-bot[train]'), or use AUTORESEARCH_DATA=stdlib "
                           "for byte-level data") from None
    return tokenizers


def _bpe_config():
    return {"vocab_size": BPE_VOCAB_SIZE, "special_tokens": list(BPE_SPECIAL_TOKENS), "split": BPE_SPLIT_PATTERN,
            "train_chars": BPE_TRAIN_CHARS, "doc_chars": BPE_DOC_CHARS, "tokenizers": _tokenizers().__version__}


def train_tokenizer(docs):
    """A byte-level BPE of BPE_VOCAB_SIZE ids trained on `docs` (an iterable of str: the first
    BPE_TRAIN_CHARS characters, each document cut to BPE_DOC_CHARS). The same docs give the same tokenizer."""
    global BPE_TRAININGS
    tk = _tokenizers()
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = tk.pre_tokenizers.Sequence([
        tk.pre_tokenizers.Split(tk.Regex(BPE_SPLIT_PATTERN), behavior="isolated"),
        tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=BPE_VOCAB_SIZE, special_tokens=list(BPE_SPECIAL_TOKENS),
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)

    def bounded():
        left = BPE_TRAIN_CHARS
        for doc in docs:
            if left <= 0:
                return
            piece = doc[:min(BPE_DOC_CHARS, left)]
            left -= len(piece)
            yield piece

    tokenizer.train_from_iterator(bounded(), trainer)
    BPE_TRAININGS += 1
    return _as_text_only(tokenizer)


def _as_text_only(tokenizer):
    tokenizer.encode_special_tokens = True  # "<|reserved_0|>" inside a document is text, not a special token
    return tokenizer


def load_tokenizer(path):
    """The tokenizer written beside the splits (DIR/tokenizer.json), e.g. to decode ids by hand."""
    return _as_text_only(_tokenizers().Tokenizer.from_file(str(path)))


def token_byte_lengths(tokenizer):
    """int32 array of BPE_VOCAB_SIZE: each id's UTF-8 byte length; 0 for special tokens and unused ids."""
    alphabet = set(_tokenizers().pre_tokenizers.ByteLevel.alphabet())  # one character per byte
    lengths = np.zeros(BPE_VOCAB_SIZE, dtype="<i4")
    for piece, i in tokenizer.get_vocab(with_added_tokens=True).items():
        if piece not in BPE_SPECIAL_TOKENS:
            if not set(piece) <= alphabet:
                raise ValueError(f"token {i} ({piece!r}) is not byte-level: not a tokenizer this harness trained")
            lengths[i] = len(piece)
    return lengths


def encode_docs(tokenizer, docs, batch=2048):
    """uint16 ids of `docs` (a list of str), each document preceded by BPE_BOS."""
    bos = tokenizer.token_to_id(BPE_BOS)
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # without offsets: faster
    parts = [np.zeros(0, dtype=np.uint16)]
    for i in range(0, len(docs), batch):
        ids = []
        for encoding in encode(docs[i:i + batch], add_special_tokens=False):
            ids.append(bos)
            ids.extend(encoding.ids)
        parts.append(np.array(ids, dtype=np.uint16))
    return np.concatenate(parts)


def _bpe_splits(train_shards, val_docs, fingerprint):
    """(train ids, val ids, token byte lengths, tokenizer path, cache folder): trained and encoded once per
    data fingerprint and tokenizer configuration, then mapped from AUTORESEARCH_CACHE_DIR/bpe/."""
    config = _bpe_config()
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    folder = cache_dir() / "bpe" / f"{fingerprint}-{key}"
    if not (folder / "bpe.json").exists():
        t0 = time.time()
        tokenizer = train_tokenizer(doc for docs in train_shards for doc in docs)  # never the validation shard
        trained = time.time() - t0
        tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(tmp / "tokenizer.json"))
        token_byte_lengths(tokenizer).tofile(tmp / "token_bytes.bin")
        # documents in shard order: the same order as the byte stream of the other sources
        train = encode_docs(tokenizer, [doc for docs in train_shards for doc in docs])
        val = encode_docs(tokenizer, list(val_docs))
        train.tofile(tmp / "train.bin")
        val.tofile(tmp / "val.bin")
        info = dict(config, fingerprint=fingerprint, train_tokens=len(train), val_tokens=len(val),
                    train_seconds=round(trained, 3), encode_seconds=round(time.time() - t0 - trained, 3))
        (tmp / "bpe.json").write_text(json.dumps(info, indent=2) + "\n")
        print(f"BPE tokenizer trained in {trained:.1f}s; {len(train):,} train and {len(val):,} val tokens "
              f"({time.time() - t0:.1f}s in all); cached in {folder}", file=sys.stderr, flush=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process cached it meanwhile (the same bytes: training is deterministic)
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    lengths = np.fromfile(folder / "token_bytes.bin", dtype="<i4")
    return (_token_file(folder / "train.bin", "uint16"), _token_file(folder / "val.bin", "uint16"), lengths,
            str(folder / "tokenizer.json"), folder)


_CORPORA = {}


def load_corpus():
    """The current source's train and val bytes (loaded once per process and source). In the train
    phase only the training split exists: the job hands it over as a file, and val is None."""
    if train_data_path():
        path = train_data_path()
        if path not in _CORPORA:
            meta_path = Path(path).with_name("meta.json")
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            _CORPORA[path] = Corpus(_token_file(path, meta.get("dtype", "uint8")), None,
                                    meta.get("source", data_spec()), meta.get("fingerprint", ""),
                                    vocab_size=int(meta.get("vocab_size", 256)))
        return _CORPORA[path]
    spec = data_spec()
    key = (spec, str(cache_dir()), os.getcwd())  # a text glob may be relative to the working directory
    if key in _CORPORA:
        return _CORPORA[key]
    kind, _, arg = spec.partition(":")
    if kind == "stdlib" and not arg:
        train, val, hide = _stdlib_bytes()
    elif kind == "parquet":
        paths = _parquet_paths(arg or PARQUET_URL)
        shards = [_parquet_docs(path) for path in paths]
        train, val, hide = _joined(shards[:-1]), _joined(shards[-1:]), (str(Path(paths[-1]).resolve()),)
    elif kind == "text" and arg:
        train, val, hide = _text_bytes(arg)
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
    if tokenizer_kind(spec) == "bpe":
        del train, val
        train, val, lengths, tokenizer, folder = _bpe_splits(shards[:-1], shards[-1], fingerprint)
        for name, part in (("train", train), ("val", val)):
            if len(part) < MAX_SEQ_LEN + 1:
                raise ValueError(f"the {name} split of AUTORESEARCH_DATA={spec} has {len(part)} tokens, fewer than "
                                 f"one sequence ({MAX_SEQ_LEN + 1}); add more text")
        _CORPORA[key] = Corpus(train, val, spec, fingerprint, (*hide, str(folder / "val.bin")), BPE_VOCAB_SIZE,
                               lengths, tokenizer)
        return _CORPORA[key]
    as_array = lambda b: np.frombuffer(bytearray(b), dtype=np.uint8)  # writable copy  # noqa: E731
    _CORPORA[key] = Corpus(as_array(train), as_array(val), spec, fingerprint, hide)
    return _CORPORA[key]


def _text_bytes_of(tokens, lengths):
    """UTF-8 bytes the tokens stand for (specials count 0), summed in chunks to bound memory."""
    if lengths is None:
        return len(tokens)
    return int(sum(lengths[tokens[i:i + 2**24]].sum(dtype=np.int64) for i in range(0, len(tokens), 2**24)))


def materialize(out_dir):
    """Write the splits for the job: train.bin (the train phase sees only this), val.bin, meta.json, and
    for BPE token_bytes.bin and tokenizer.json. The ids are uint8 (bytes) or uint16 (BPE), native order."""
    corpus = load_corpus()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus.train.tofile(out / "train.bin")
    corpus.val.tofile(out / "val.bin")
    meta = {"source": corpus.source, "fingerprint": corpus.fingerprint,
            "train_bytes": _text_bytes_of(corpus.train, corpus.token_bytes),
            "val_bytes": _text_bytes_of(corpus.val, corpus.token_bytes), "hide": list(corpus.hide),
            "tokenizer": "bytes" if corpus.token_bytes is None else "bpe", "vocab_size": corpus.vocab_size,
            "dtype": corpus.train.dtype.name, "train_tokens": len(corpus.train), "val_tokens": len(corpus.val),
            "token_bytes": None, "tokenizer_file": None}
    if corpus.token_bytes is not None:
        corpus.token_bytes.astype("<i4").tofile(out / "token_bytes.bin")
        (out / "tokenizer.json").write_bytes(Path(corpus.tokenizer).read_bytes())
        meta.update(token_bytes="token_bytes.bin", token_bytes_dtype="int32-le", tokenizer_file="tokenizer.json",
                    tokenizer_sha256=hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest(),
                    bos_id=BPE_SPECIAL_TOKENS.index(BPE_BOS), special_tokens=list(BPE_SPECIAL_TOKENS))
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _token_file(path, dtype="uint8"):
    """A materialized split, mapped rather than read: pages come in as batches touch them, so a
    process starts without reading (or parsing) the corpus. Copy-on-write: the array is writable for
    torch.from_numpy, and nothing reaches the file (which may be a read-only mount in the sandbox)."""
    if dtype not in ("uint8", "uint16"):
        raise ValueError(f"token files hold uint8 or uint16 ids, not {dtype!r}; materialize the data again")
    if os.path.getsize(path) == 0:
        return np.zeros(0, dtype=dtype)  # mmap cannot map an empty file
    return np.memmap(path, dtype=dtype, mode="c")


def _load_val(data_dir):
    meta = json.loads((Path(data_dir) / "meta.json").read_text())
    return _token_file(Path(data_dir) / "val.bin", meta.get("dtype", "uint8")), meta


def _load_token_bytes(data_dir, meta):
    """Each id's UTF-8 byte length (meta's token_bytes file, int32 little-endian); None for byte splits."""
    if not meta.get("token_bytes"):
        return None
    lengths = np.fromfile(Path(data_dir) / Path(meta["token_bytes"]).name, dtype="<i4")
    if len(lengths) != meta["vocab_size"]:
        raise ValueError(f"{meta['token_bytes']} holds {len(lengths)} lengths for a vocabulary of "
                         f"{meta['vocab_size']}; materialize the data again")
    return lengths


def _to_device(t, device):
    """A host tensor on `device`. On CUDA through pinned memory without blocking: a copy from pageable
    memory waits for every kernel queued before it, so the CPU could not prepare the next batch while
    the GPU works. (The caching host allocator keeps a pinned block until its copy has finished.)"""
    if torch.device(device).type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


# ---------------------------------------------------------------------------
# Dataloader
# ---------------------------------------------------------------------------


def make_dataloader(split, batch_size, seq_len, device):
    """Infinite (x, y) batches at random offsets, from a generator seeded by run_seed() and split."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if preflight_path():
        yield from _preflight_batches(batch_size, seq_len)
        return
    data = getattr(load_corpus(), split)
    if data is None:
        raise ValueError("the validation split is not available to train.py: the harness scores the model "
                         "after training, in its own process. Train on make_dataloader('train', ...).")
    if len(data) < seq_len + 1:
        raise ValueError(f"the {split} split has {len(data)} tokens, fewer than one sequence of {seq_len + 1}; "
                         "use a shorter seq_len or more data")
    # The split on the GPU, compact: 1 byte per token, or 2 for BPE (ids < 8192 fit int16; torch indexes
    # int16, not uint16); on CPU the mapped file itself. Rows are gathered, then widened to int64.
    tokens = torch.from_numpy(data.view(np.int16) if data.dtype == np.uint16 else data).to(device)
    generator = torch.Generator().manual_seed(run_seed() * 2 + (split == "val"))
    span = torch.arange(seq_len + 1, device=device)
    n_starts = len(data) - seq_len
    while True:
        starts = _to_device(torch.randint(n_starts, (batch_size, 1), generator=generator), device)
        rows = tokens[starts + span].long()
        yield rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


# ---------------------------------------------------------------------------
# Evaluation: logits in, bits per byte out
# ---------------------------------------------------------------------------


def _check_logits(out, shape, vocab_size=None):
    vocab_size = vocab_size or VOCAB_SIZE
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (*shape, vocab_size) or not out.is_floating_point():
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must map tokens (B, T) to float logits of shape (B, T, {vocab_size}); got {got}")
    return out


# ---------------------------------------------------------------------------
# Handing the model over: one forward pass traced into a graph of ATen operations
# ---------------------------------------------------------------------------
# File: b"AUTORESEARCH-GRAPH 1\n", an 8-byte little-endian header length, the header (JSON: input
# shape, tensor table, nodes, output), then the tensors' raw bytes. Loading parses JSON, copies
# bytes into tensors and looks operations up in torch.ops.aten: no pickle, no code from the file.

GRAPH_MAGIC = b"AUTORESEARCH-GRAPH 1\n"
_DTYPES = {name: getattr(torch, name) for name in ("float64", "float32", "float16", "bfloat16", "int64", "int32",
                                                   "int16", "int8", "uint8", "bool", "complex64")}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
_MEMORY_FORMATS = {name: getattr(torch, name) for name in ("contiguous_format", "preserve_format", "channels_last")}
# Operations that hand out memory nobody wrote (which may hold the harness's own data, e.g. the
# targets of the previous batch) or touch files or storage: a graph that uses one is refused.
_REFUSED_OPS = ("from_file", "empty", "empty_like", "empty_strided", "empty_permuted", "new_empty",
                "new_empty_strided", "resize_", "resize_as_", "set_", "_unsafe_index", "_unsafe_index_put",
                "_unsafe_masked_index", "_unsafe_masked_index_put_accumulate", "_resize_output_", "_reshape_alias")


class _Recorder:
    """Records every ATen call of one forward pass (a TorchDispatchMode, made lazily)."""

    def __init__(self, x, named_tensors):
        self.x, self.nodes, self.tensors, self.blobs = x, [], [], []
        self.known = {id(x): {"input": 0}}
        # The input and the constants are kept alive, so their ids stay theirs. Intermediates are
        # not: each is forgotten when it dies (before CPython can reuse its id), so the trace holds
        # no more memory than the forward pass itself.
        self.keep = {id(x): x}
        for name, tensor in named_tensors:
            self._constant(tensor, name)

    def _constant(self, tensor, name=None):
        if id(tensor) not in self.known:
            data = tensor.detach().contiguous()
            self.tensors.append({"name": name or f"const{len(self.tensors)}", "dtype": _DTYPE_NAMES[data.dtype],
                                 "shape": list(data.shape), "device": str(data.device)})
            self.blobs.append(data)
            self.known[id(tensor)] = {"tensor": len(self.tensors) - 1}
            self.keep[id(tensor)] = tensor
        return self.known[id(tensor)]

    def encode(self, value):
        if isinstance(value, torch.Tensor):
            if value.dtype not in _DTYPE_NAMES:
                raise ValueError(f"the model uses a tensor of dtype {value.dtype}, which cannot be handed over")
            return self.known.get(id(value)) or self._constant(value)
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"float": repr(value)}
        if isinstance(value, (list, tuple)):
            return {"list" if isinstance(value, list) else "tuple": [self.encode(v) for v in value]}
        for kind, cls in (("dtype", torch.dtype), ("device", torch.device), ("layout", torch.layout),
                          ("memory_format", torch.memory_format)):
            if isinstance(value, cls):
                return {kind: _DTYPE_NAMES[value] if kind == "dtype" else str(value).replace("torch.", "")}
        raise ValueError(f"the model's forward passes a {type(value).__name__} to an ATen operation; "
                         "only tensors, numbers, strings, dtypes and devices can be handed over")

    def record(self, func, args, kwargs):
        node = {"op": f"{func.namespace}.{func._schema.name.split('::')[-1]}.{func._overloadname}",
                "args": [self.encode(v) for v in args],
                "kwargs": {key: self.encode(v) for key, v in (kwargs or {}).items()}}
        out = func(*args, **(kwargs or {}))
        index = len(self.nodes)
        self.nodes.append(node)
        outputs = out if isinstance(out, (list, tuple)) else [out]
        for i, item in enumerate(outputs):
            if isinstance(item, torch.Tensor):
                self.known[id(item)] = {"node": index, "item": i if isinstance(out, (list, tuple)) else None}
                if self.keep.get(id(item)) is not item:
                    weakref.finalize(item, self._forget, id(item), self.known[id(item)])
        return out

    def _forget(self, key, entry):
        if self.known.get(key) is entry:  # an in-place op may have re-registered the id meanwhile
            del self.known[key]


def trace_model(model, x, vocab_size=None):
    """Run model(x) once under a recorder; return the graph's header and the tensors it needs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: trace the module itself
    named = [*model.named_parameters(), *model.named_buffers()] if isinstance(model, torch.nn.Module) else []
    recorder = _Recorder(x, named)

    def dispatch(mode, func, types, args=(), kwargs=None):
        return recorder.record(func, args, kwargs)

    setattr(dispatch, "__dynamo_disable", dispatch)  # skip importing torch._dynamo (~1 s on a CPU)
    mode_class = type("GraphRecorder", (TorchDispatchMode,), {"__torch_dispatch__": dispatch})
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False), mode_class():
        out = model(x)
    _check_logits(out, tuple(x.shape), vocab_size)
    output = recorder.known.get(id(out)) or recorder._constant(out)
    header = {"input": {"shape": list(x.shape), "dtype": "int64", "device": str(x.device)},
              "tensors": recorder.tensors, "nodes": recorder.nodes, "output": output}
    return header, recorder.blobs


def save_graph(path, header, blobs):
    offset = 0
    for entry, blob in zip(header["tensors"], blobs):
        entry["offset"], entry["nbytes"] = offset, blob.numel() * blob.element_size()
        offset += entry["nbytes"]
    text = json.dumps(header, separators=(",", ":")).encode()
    tmp = Path(f"{path}.tmp")
    with open(tmp, "wb") as f:
        f.write(GRAPH_MAGIC + struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob.cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    os.replace(tmp, path)


def _within_storage(t):
    """Whether every element a view can address lies inside its storage (no op may reach past it)."""
    if t.numel() == 0:
        return True
    last = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
    return min(t.stride(), default=0) >= 0 and t.storage_offset() >= 0 and \
        (last + 1) * t.element_size() <= t.untyped_storage().nbytes()


class GraphProgram:
    """A handed-over graph, loaded without running anything from the file. Each call gets fresh
    copies of the weights and the same random state, so no call can remember another."""

    def __init__(self, path, max_bytes=None, vocab_size=None):
        self.vocab_size = vocab_size or VOCAB_SIZE
        raw = Path(path).read_bytes()
        if max_bytes and len(raw) > max_bytes:
            raise ValueError(f"the handed-over graph is {len(raw)} bytes, more than {max_bytes}")
        if not raw.startswith(GRAPH_MAGIC):
            raise ValueError("the handed-over model is not a graph written by prepare.evaluate_bpb (wrong magic); "
                             "refused without loading it")
        (size,) = struct.unpack("<Q", raw[len(GRAPH_MAGIC):len(GRAPH_MAGIC) + 8])
        start = len(GRAPH_MAGIC) + 8
        header = json.loads(raw[start:start + size].decode("utf-8"))
        data = memoryview(raw)[start + size:]
        spec = header["input"]
        self.shape = tuple(int(n) for n in spec["shape"])
        self.device = torch.device(self._device(spec["device"]))
        self.tensors = [self._tensor(entry, data) for entry in header["tensors"]]
        self.nodes = [(self._op(node["op"]), node["args"], node["kwargs"]) for node in header["nodes"]]
        # After its last use a node's output is dropped, so a call holds what the model's own forward
        # pass would, not every intermediate at once.
        last_use = {}
        for index, node in enumerate(header["nodes"]):
            for ref in _node_refs([node["args"], list(node["kwargs"].values())]):
                last_use[ref] = index
        for ref in _node_refs(header["output"]):
            last_use[ref] = len(header["nodes"])
        self.dead_after = [[] for _ in header["nodes"]]
        for ref, index in last_use.items():
            if 0 <= ref < index < len(header["nodes"]):
                self.dead_after[index].append(ref)
        self.names = [node["op"] for node in header["nodes"]]
        self.output = header["output"]

    @staticmethod
    def _device(name):
        if name != "cpu" and not (name == "cuda" or name.startswith("cuda:") and name[5:].isdigit()):
            raise ValueError(f"the graph names device {name!r}; only cpu and cuda are allowed")
        return name

    def _tensor(self, entry, data):
        dtype, shape = _DTYPES[entry["dtype"]], [int(n) for n in entry["shape"]]
        offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
        if offset < 0 or offset + nbytes > len(data) or nbytes != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"tensor {entry.get('name')!r} does not fit the graph file")
        flat = torch.frombuffer(bytearray(data[offset:offset + nbytes]), dtype=torch.uint8) if nbytes else \
            torch.zeros(0, dtype=torch.uint8)
        return flat.view(dtype).reshape(shape).to(self._device(entry["device"]))

    @staticmethod
    def _op(name):
        namespace, op_name, overload = name.split(".")
        if namespace != "aten" or op_name in _REFUSED_OPS:
            raise ValueError(f"the graph uses {name}, which the harness does not run")
        op = getattr(getattr(torch.ops.aten, op_name), overload)
        if not isinstance(op, torch._ops.OpOverload):
            raise ValueError(f"{name} is not an ATen operation")
        return op

    def _decode(self, value, env, x, tensors):
        if isinstance(value, list):
            return [self._decode(v, env, x, tensors) for v in value]
        if not isinstance(value, dict):
            return value
        if "input" in value:
            return x
        if "tensor" in value:
            return tensors[value["tensor"]]
        if "node" in value:
            out = env[value["node"]]
            return out if value["item"] is None else out[value["item"]]
        if "list" in value or "tuple" in value:
            items = [self._decode(v, env, x, tensors) for v in value.get("list", value.get("tuple"))]
            return items if "list" in value else tuple(items)
        if "float" in value:
            return float(value["float"])
        if "dtype" in value:
            return _DTYPES[value["dtype"]]
        if "device" in value:
            return torch.device(self._device(value["device"]))
        if "layout" in value:
            return {"strided": torch.strided}[value["layout"]]
        if "memory_format" in value:
            return _MEMORY_FORMATS[value["memory_format"]]
        raise ValueError(f"the graph holds an unknown value {value!r}")

    def __call__(self, x):
        if tuple(x.shape) != self.shape:
            raise ValueError(f"the graph was traced for input {self.shape}, got {tuple(x.shape)}")
        tensors = [t.clone() for t in self.tensors]
        torch.manual_seed(0)
        env = []
        for (op, args, kwargs), name in zip(self.nodes, self.names):
            out = op(*self._decode(args, env, x, tensors), **{key: self._decode(v, env, x, tensors)
                                                             for key, v in kwargs.items()})
            for item in out if isinstance(out, (list, tuple)) else [out]:
                if isinstance(item, torch.Tensor) and not _within_storage(item):
                    raise ValueError(f"{name} made a view beyond its tensor's memory; the graph is refused")
            env.append(out)
            for ref in self.dead_after[len(env) - 1]:
                env[ref] = None
        return _check_logits(self._decode(self.output, env, x, tensors), self.shape[:2], self.vocab_size)


def _node_refs(value):
    """Indices of the nodes a graph value refers to."""
    if isinstance(value, list):
        for item in value:
            yield from _node_refs(item)
    elif isinstance(value, dict):
        if "node" in value and isinstance(value["node"], int):
            yield value["node"]
        for key in ("list", "tuple"):
            if key in value:
                yield from _node_refs(value[key])


# ---------------------------------------------------------------------------
# Scoring: bits per byte, and causality checked on every scored row at a random cut
# ---------------------------------------------------------------------------


def score_bpb(forward, val, batch_size, device, token_bytes=None, vocab_size=None):
    """val_bpb of `forward` (tokens -> logits) on EVAL_TOKENS of `val`, and whether it is causal.

    Bits per byte: total nats / (ln 2 x the UTF-8 bytes of the scored targets). With `token_bytes` (BPE:
    each id's byte length) targets of length 0 (special tokens) count in neither sum, as in
    karpathy/autoresearch; without it every token is one byte (the byte-level sources).

    Rows are spread over val, never touching, and batched in a random order. Each batch is also run
    with every row's tokens from a random cut on replaced by another row's text; the logits before
    the cut must not move. The two calls of a batch come in random order. The randomness comes from
    the operating system, so nothing in the experiment can predict a cut.
    """
    T, V = MAX_SEQ_LEN, vocab_size or VOCAB_SIZE
    n_seq = min(EVAL_TOKENS // T, (len(val) - 1) // (T + 1))
    if n_seq < 1:
        raise ValueError(f"the validation split has {len(val)} tokens, fewer than one sequence of {T + 1}")
    if n_seq * T < EVAL_TOKENS:
        print(f"warning: val split holds only {n_seq * T} of EVAL_TOKENS={EVAL_TOKENS}", file=sys.stderr)
    stride = (len(val) - 1) // n_seq  # >= T + 1: no row holds another row's next token
    rows = torch.from_numpy(np.stack([val[i * stride:i * stride + T + 1] for i in range(n_seq)]).astype(np.int64))
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    order = torch.from_numpy(rng.permutation(n_seq))
    cuts = torch.from_numpy(rng.integers(1, T, size=n_seq))
    donors = rows[torch.from_numpy(rng.permutation(n_seq)), :T]
    positions = torch.arange(T)
    low_precision = torch.is_autocast_enabled(device.type)
    # Sums stay on the device and are read once at the end: a read per batch would make the CPU wait
    # for the GPU before it builds the next batch. Every batch has the same shape, strides and grad
    # mode, so a compiled forward compiles once.
    zero = torch.zeros((), dtype=torch.float64, device=device)
    nats, worst, broken, finite = zero.clone(), zero.clone(), zero.clone(), torch.ones((), dtype=torch.bool,
                                                                                          device=device)
    lengths = None if token_bytes is None else torch.as_tensor(np.asarray(token_bytes, dtype=np.int64), device=device)
    n_bytes = zero.clone() if lengths is not None else None
    for i in range(0, n_seq, batch_size):
        index = order[i:i + batch_size]
        n = len(index)
        if n < batch_size:  # pad with other rows (not scored) to keep the traced shape
            index = torch.cat([index, order[:batch_size - n]])
        x, y, cut = rows[index, :T].contiguous(), rows[index, 1:].contiguous(), cuts[index]
        after = positions[None, :] >= cut[:, None]
        changed = torch.where(after, donors[index], x)
        same = changed.gather(1, cut[:, None]) == x.gather(1, cut[:, None])  # the first changed token must differ
        changed.scatter_(1, cut[:, None], torch.where(same, (x.gather(1, cut[:, None]) + 1) % V,
                                                      changed.gather(1, cut[:, None])))
        batches = [x, changed] if rng.random() < 0.5 else [changed, x]
        outs = {id(b): forward(_to_device(b, device)).float() for b in batches}
        logits, probe = outs[id(x)], outs[id(changed)]
        finite &= torch.isfinite(logits).all() & torch.isfinite(probe).all()
        # Compared as log-probabilities, which is what is scored: an offset that softmax ignores
        # can neither hide a leak nor widen the tolerance.
        logp, probe_logp = F.log_softmax(logits, -1), F.log_softmax(probe, -1)
        target = _to_device(y[:n], device).reshape(-1)
        if lengths is None:
            nats += F.cross_entropy(logits[:n].double().reshape(-1, V), target, reduction="sum")
        else:
            counted = lengths[target]
            token_nats = F.cross_entropy(logits[:n].double().reshape(-1, V), target, reduction="none")
            nats += torch.where(counted > 0, token_nats, 0.0).sum()
            n_bytes += counted.sum()
        before = _to_device(~after, device)[:, :, None]
        diff = ((logp - probe_logp).abs() * before).amax(dim=(1, 2))[:n]
        broken += (diff > (2e-2 if low_precision else 1e-4)).sum()
        worst = torch.maximum(worst, diff.max().double())
    nonfinite = not finite.item()
    total_bytes = n_seq * T if n_bytes is None else n_bytes.item()  # byte-level: a token is a byte
    val_bpb = math.nan if nonfinite or not total_bytes else nats.item() / (math.log(2) * total_bytes)
    worst, broken = (math.nan if nonfinite else worst.item()), int(broken.item())
    return {"val_bpb": val_bpb if math.isfinite(val_bpb) else None, "causal": broken == 0 and math.isfinite(worst),
            "causal_rows_failed": broken, "causal_rows_checked": n_seq,
            "causal_max_diff": worst if math.isfinite(worst) else None, "eval_tokens": n_seq * T,
            "eval_bytes": int(total_bytes)}


def _refusal(result):
    if result["causal_max_diff"] is None or result["val_bpb"] is None:
        return "the model's logits are not all finite (NaN/inf) on validation data; the run is invalid"
    if not result["causal"]:
        return (f"non-causal model: on {result['causal_rows_failed']} of {result['causal_rows_checked']} rows, "
                f"changing the tokens after a random cut changed earlier logits (by up to "
                f"{result['causal_max_diff']:.3g}); the model sees the future, so val_bpb is invalid. "
                "Use is_causal=True attention and mix nothing across time.")
    return None


@torch.no_grad()
def evaluate_bpb(model, batch_size):
    """Under the job: hand the model to the harness (returns nan; the job measures val_bpb in a fresh
    process). Run by hand: bits per byte of model(x) on the validation split, with the same checks."""
    batch_size = max(1, min(int(batch_size), EVAL_BATCH_SIZE))
    device = next(iter(model.parameters()), torch.empty(0, device=get_device())).device
    if preflight_path():
        _preflight_finish(model, batch_size, device)  # measures the hand-over, writes the estimate, exits
    was_training = model.training
    model.eval()
    try:
        if handoff_path():  # traced on training text: the shape is what matters, never the content
            corpus = load_corpus()
            x = torch.from_numpy(corpus.train[:MAX_SEQ_LEN].astype(np.int64)).repeat(batch_size, 1)
            save_graph(handoff_path(), *trace_model(model, x.to(device), corpus.vocab_size))
            print(f"handed the model to the harness: {handoff_path()}", file=sys.stderr, flush=True)
            return math.nan
        t0 = time.time()
        # Scored eagerly, as the eval phase scores the graph: torch.compile's wrapper would compile
        # again here (no_grad is a new graph), which costs more on a GPU than the eager forward passes.
        module = getattr(model, "_orig_mod", model)
        corpus = load_corpus()
        result = score_bpb(lambda b: _check_logits(module(b), tuple(b.shape), corpus.vocab_size), corpus.val,
                           batch_size, device, corpus.token_bytes, corpus.vocab_size)
    finally:
        model.train(was_training)
    refusal = _refusal(result)
    if refusal:
        raise RuntimeError(refusal)
    print(f"evaluated by hand in {time.time() - t0:.1f}s (under the bot, a fresh process does this)", file=sys.stderr)
    return result["val_bpb"]


def evaluate_graph(graph_path, data_dir, result_path, max_bytes=None, wait=False):
    """The eval phase: score a handed-over graph on the validation split; write the result JSON.
    With `wait`, load everything first and start when a line `go` arrives on stdin (the job starts
    this process while the experiment trains, so that importing torch costs no wall time)."""
    val, meta = _load_val(data_dir)
    token_bytes = _load_token_bytes(data_dir, meta)
    vocab_size = int(meta.get("vocab_size", 256))
    if wait:
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return None
    t0 = time.time()
    program = GraphProgram(graph_path, max_bytes, vocab_size)
    if program.shape[1:] != (MAX_SEQ_LEN,) or not 1 <= program.shape[0] <= MAX_EVAL_BATCH:
        raise ValueError(f"the graph was traced for input {program.shape}; the harness needs (B, {MAX_SEQ_LEN}) "
                         f"with 1 <= B <= {MAX_EVAL_BATCH}")
    loaded = time.time()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if program.device.type == "cuda" else \
        torch.autocast("cpu", enabled=False)
    with torch.no_grad(), autocast:
        result = score_bpb(program, val, program.shape[0], program.device, token_bytes, vocab_size)
    result.update({
        "refusal": _refusal(result), "load_seconds": round(loaded - t0, 3), "eval_seconds": round(time.time() - t0, 3),
        "harness_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "data_source": meta["source"], "data_fingerprint": meta["fingerprint"],
        "tokenizer": meta.get("tokenizer", "bytes"), "vocab_size": vocab_size,
        "device": torch.cuda.get_device_name(program.device) if program.device.type == "cuda" else "cpu",
        "seq_len": MAX_SEQ_LEN, "batch_size": program.shape[0], "graph_ops": len(program.nodes),
        "graph_bytes": os.path.getsize(graph_path),
    })
    tmp = Path(f"{result_path}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, result_path)
    return result


# ---------------------------------------------------------------------------
# Memory preflight: the GPU profile's peak memory, estimated on a CPU without computing anything
# ---------------------------------------------------------------------------
# With AUTORESEARCH_PREFLIGHT=<path> (set by the job, in the same sandbox as the train phase, before
# any GPU time): GPU_PROFILE is True, get_device() is "cpu", and from this module's import on every
# tensor is a FakeTensor (shapes, dtypes and strides, no data) under a dispatch mode that adds up the
# bytes of live storages and keeps the peak. train.py's autocast("cpu", bf16) casts the same op
# classes as CUDA's; CPU SDPA (causal, or with a mask) takes the flash path that saves only out and
# logsumexp, as flash/flex attention on the GPU do. make_dataloader yields fake (B, T) batches and
# holds a fake training split of AUTORESEARCH_PREFLIGHT_DATA_BYTES (the real one sits on the GPU);
# `.item()` answers 2.0 (a loss), 0 or False. The run gets STEP_BUDGET = 2 (3 optimizer steps with
# the uncounted one; the steady state of params + optimizer state + grads + activations is reached
# from the second); evaluate_bpb then traces the hand-over (float32, at most EVAL_BATCH_SIZE rows)
# under the same count, writes the estimate as JSON and ends the process with exit code 0.
# What the GPU adds (CUDA context, allocator fragmentation) and what it saves (torch.compile's fusion)
# is the job's margin (bot/gpu_memory.py). The estimate comes from the experiment's own process: it
# can only be forged to waste that experiment's GPU time, never to change a metric.

PREFLIGHT_ALIGN = 512  # bytes: the CUDA caching allocator rounds every block up to this
_PREFLIGHT = {}


def _preflight_scalar(t):
    if t.dtype == torch.bool:
        return False
    return 2.0 if t.is_floating_point() else 0


def _preflight_tracker():
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class MemoryTracker(TorchDispatchMode):
        """Live bytes of every storage made under it (fake or real) and their peak."""

        def __init__(self):
            super().__init__()
            self.live = self.peak = self.scalar_reads = 0
            self.storages = {}  # id(storage) -> its finalizer: a storage counts once, views add nothing
            self.ops = {}  # attention kernels seen (which SDPA path ran)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._local_scalar_dense.default:  # .item(), bool(), float() of a fake tensor
                self.scalar_reads += 1
                return _preflight_scalar(args[0])
            if "attention" in func.__name__:
                self.ops[func.__name__] = self.ops.get(func.__name__, 0) + 1
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.track(t)
            return out

        def track(self, t):
            storage = t.untyped_storage()  # the same Python object while the storage lives
            if id(storage) in self.storages:
                return
            size = -(-storage.nbytes() // PREFLIGHT_ALIGN) * PREFLIGHT_ALIGN
            self.live += size
            self.peak = max(self.peak, self.live)
            self.storages[id(storage)] = weakref.finalize(storage, self._freed, id(storage), size)

        def _freed(self, key, size):
            self.live -= size
            self.storages.pop(key, None)

    setattr(MemoryTracker.__torch_dispatch__, "__dynamo_disable", MemoryTracker.__torch_dispatch__)
    return MemoryTracker()


def _preflight_start(fake=True):
    """Enter the modes for the rest of the process (train.py runs inside them). `fake=False` tracks
    real CPU tensors: the tests compare that count with the operating system's measurement."""
    _PREFLIGHT.update(started=time.time(), batches=0, fake=fake)
    if fake:
        from torch._subclasses.fake_tensor import FakeTensorMode

        _PREFLIGHT["fake_mode"] = FakeTensorMode(allow_non_fake_inputs=True)
        _PREFLIGHT["fake_mode"].__enter__()
        swap = torch.utils.swap_tensors

        def swap_fake(t1, t2):  # Module.to() swaps fake parameters, and refuses one the fake mode holds a weakref to
            try:
                return swap(t1, t2)
            except RuntimeError:
                t1.data = t2.data

        torch.utils.swap_tensors = swap_fake
    _PREFLIGHT["tracker"] = _preflight_tracker()
    _PREFLIGHT["tracker"].__enter__()


def _preflight_batches(batch_size, seq_len):
    data_bytes = _env_number("AUTORESEARCH_PREFLIGHT_DATA_BYTES", 0, int)
    split = torch.zeros(data_bytes, dtype=torch.uint8)  # noqa: F841 - the training split, as the GPU holds it
    _PREFLIGHT["data_bytes"], _PREFLIGHT["train_batch_size"] = data_bytes, batch_size
    while True:
        _PREFLIGHT["batches"] += 1
        x = torch.zeros(batch_size, seq_len, dtype=torch.long)
        yield x, torch.zeros_like(x)


def _preflight_finish(model, batch_size, device):
    """After training: trace the hand-over as the job would (its peak counts too), write the
    estimate and end the process."""
    tracker = _PREFLIGHT["tracker"]
    train_peak, tracker.peak = tracker.peak, tracker.live
    module = getattr(model, "_orig_mod", model)
    module.eval()
    x = torch.zeros(batch_size, MAX_SEQ_LEN, dtype=torch.long, device=device)
    with torch.no_grad():
        header, _ = trace_model(module, x)
    params = [p for p in module.parameters()] if isinstance(module, torch.nn.Module) else []
    estimate = {
        "peak_bytes": max(train_peak, tracker.peak), "train_peak_bytes": train_peak,
        "handoff_peak_bytes": tracker.peak, "params": sum(p.numel() for p in params),
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "data_bytes": _PREFLIGHT.get("data_bytes", 0), "batches": _PREFLIGHT["batches"],
        "scalar_reads": tracker.scalar_reads, "handoff_ops": len(header["nodes"]), "attention_ops": tracker.ops,
        "batch_size": _PREFLIGHT.get("train_batch_size"), "handoff_batch_size": int(batch_size),
        "seq_len": MAX_SEQ_LEN, "vocab_size": VOCAB_SIZE, "fake": _PREFLIGHT["fake"],
        "seconds": round(time.time() - _PREFLIGHT["started"], 3),
        "measured": "live storage bytes (rounded to 512) of every tensor train.py made, under FakeTensorMode on CPU "
                    "with bf16 autocast: peak of training (>= 2 optimizer steps) and of the hand-over trace",
    }
    tmp = Path(f"{preflight_path()}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(estimate, indent=2) + "\n")
    os.replace(tmp, preflight_path())
    print(f"memory preflight: estimated peak {estimate['peak_bytes'] / 2**30:.2f} GiB (training "
          f"{train_peak / 2**30:.2f}, hand-over {tracker.peak / 2**30:.2f}) in {estimate['seconds']:.1f}s",
          flush=True)
    sys.stderr.flush()
    os._exit(0)


if preflight_path() and __name__ != "__main__":
    _preflight_start(fake=os.environ.get("AUTORESEARCH_PREFLIGHT_REAL", "") != "1")


def _main(argv):
    if argv[:1] == ["materialize"] and len(argv) == 2:
        meta = materialize(argv[1])
        print(f"data: {meta['source']} | fingerprint: {meta['fingerprint']} | tokenizer: {meta['tokenizer']} "
              f"({meta['vocab_size']} ids) | train: {meta['train_bytes']:,} bytes, {meta['train_tokens']:,} tokens | "
              f"val: {meta['val_bytes']:,} bytes, {meta['val_tokens']:,} tokens")
    elif argv[:1] in (["evaluate"], ["evaluate-when-ready"]) and len(argv) in (4, 5):
        result = evaluate_graph(argv[1], argv[2], argv[3], int(argv[4]) if len(argv) == 5 else None,
                                wait=argv[0] == "evaluate-when-ready")
        if result:
            print(f"val_bpb: {result['val_bpb']} | causal: {result['causal']} | {result['eval_seconds']}s")
    elif not argv:  # fetch and check the data once, e.g. while building an image
        corpus = load_corpus()
        print(f"data: {corpus.source} | fingerprint: {corpus.fingerprint} | vocab: {corpus.vocab_size} | "
              f"train: {len(corpus.train):,} tokens | val: {len(corpus.val):,} tokens")
    else:
        sys.exit("usage: python prepare.py [materialize DIR | evaluate[-when-ready] GRAPH DATA_DIR RESULT [MAX_BYTES]]")


if __name__ == "__main__":
    _main(sys.argv[1:])
