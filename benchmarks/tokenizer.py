"""The parquet source's BPE tokenizer (prepare.train_tokenizer, 8192 ids): training time, encoding speed and
bytes per token, measured on text this machine has, at a few sizes so that the cost can be extrapolated
to karpathy's climbmix train shards (which are not reachable from here).

Corpora (documents = files):
  stdlib  the Python standard library's source, split as the harness splits it (validation = its
          STDLIB_VAL_PACKAGES); code, so more bytes per token than web text
  prose   Markdown and text documentation under /usr/share/doc and /usr/share/vim (English technical
          prose with some code), every 10th file held out

    python benchmarks/tokenizer.py                  # writes benchmarks/results/tokenizer.md
    python benchmarks/tokenizer.py --no-write
"""

import argparse
import os
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import prepare  # noqa: E402


def stdlib_docs():
    root = Path(sysconfig.get_paths()["stdlib"])
    files = prepare._stdlib_files()
    is_val = lambda name: name.split("/")[0] in prepare.STDLIB_VAL_PACKAGES  # noqa: E731
    read = lambda items: [Path(p).read_text(errors="replace") for _, p in items]  # noqa: E731
    return read([f for f in files if not is_val(f[0])]), read([f for f in files if is_val(f[0])]), str(root)


def prose_docs():
    paths = sorted(p for top in ("/usr/share/doc", "/usr/share/vim") for p in Path(top).rglob("*")
                   if p.suffix in (".md", ".txt") and p.is_file() and not p.is_symlink())
    docs = [p.read_text(errors="replace") for p in paths]
    return [d for i, d in enumerate(docs) if i % 10], [d for i, d in enumerate(docs) if not i % 10], \
        f"{len(paths)} .md/.txt files under /usr/share/doc and /usr/share/vim"


def measure(name, train, val, where):
    rows = []
    # Files cut into document-sized pieces (BPE_DOC_CHARS, ~a web page): otherwise the harness's per-document
    # cut would train on each file's head only.
    size = prepare.BPE_DOC_CHARS
    pieces = [doc[i:i + size] for doc in train for i in range(0, len(doc), size)]
    total = sum(len(d) for d in pieces)
    for share in (0.25, 0.5, 1.0):
        take, chars = [], 0
        for doc in pieces:
            if chars >= share * total:
                break
            take.append(doc)
            chars += len(doc)
        t0 = time.perf_counter()
        tokenizer = prepare.train_tokenizer(take)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = prepare.encode_docs(tokenizer, train)
        encode_s = time.perf_counter() - t0
        val_ids = prepare.encode_docs(tokenizer, val)
        lengths = prepare.token_byte_lengths(tokenizer)
        train_bytes, val_bytes = int(lengths[ids].sum()), int(lengths[val_ids].sum())
        assert train_bytes == sum(len(d.encode()) for d in train)
        trained_bytes = sum(len(d.encode()) for d in take)
        rows.append({"corpus": name, "trained_mb": trained_bytes / 1e6, "train_s": train_s,
                     "vocab": tokenizer.get_vocab_size(), "encode_mb_s": train_bytes / 1e6 / encode_s,
                     "bpt_train": train_bytes / (len(ids) - len(train)), "bpt_val": val_bytes / (len(val_ids) - len(val))})
        print(rows[-1], flush=True)
    return rows, f"{name}: {where}; {sum(len(d.encode()) for d in train) / 1e6:.1f} MB train, " \
                 f"{sum(len(d.encode()) for d in val) / 1e6:.1f} MB held out"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows, notes = [], []
    for name, source in (("stdlib", stdlib_docs), ("prose", prose_docs)):
        got, note = measure(name, *source())
        rows += got
        notes.append(note)
    lines = ["# BPE tokenizer: training time and bytes per token", "",
             f"`python benchmarks/tokenizer.py` on {os.cpu_count()} CPU cores (load average {load:.1f} at the start: "
             "the machine is shared), tokenizers " + prepare._tokenizers().__version__ + ".", "",
             *[f"- {n}" for n in notes], "",
             "Training text: the train files cut into BPE_DOC_CHARS pieces, the first 25 %, 50 %, 100 % of them. "
             "Encoding: all train files (each preceded by BOS), through prepare.encode_docs. Bytes per token "
             "leaves BOS out.", "",
             "| corpus | trained on (MB) | training (s) | vocab | encoding (MB/s) | bytes/token, train | bytes/token, held out |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['corpus']} | {r['trained_mb']:.1f} | {r['train_s']:.2f} | {r['vocab']} | {r['encode_mb_s']:.1f} | "
              f"{r['bpt_train']:.2f} | {r['bpt_val']:.2f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        (ROOT / "benchmarks" / "results" / "tokenizer.md").write_text(text)


if __name__ == "__main__":
    main()
