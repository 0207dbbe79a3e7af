"""The ledger: `experiments.jsonl` (every fact, one JSON object per experiment, the source of
truth) and `results.tsv` (autoresearch's five columns, rendered from it).

Formatting and parsing are pure functions; `Ledger` is the thin file layer. results.tsv is
rewritten whole from the jsonl after each append (temporary file + rename), so the two can
never disagree and a kill at any moment leaves either the old or the new file.
"""

import json
import os
from pathlib import Path

from bot.errors import LedgerError

TSV_STATUSES = ("keep", "discard", "crash", "gate-failed")


def _clean(text):
    return " ".join(str(text or "").split())


def tsv_header(metric="val_bpb"):
    return f"commit\t{metric}\tmemory_gb\tstatus\tdescription"


def tsv_row(record):
    crashed = record["status"] in ("crash", "gate-failed") or record.get("metric") is None
    value = 0.0 if crashed else float(record["metric"])
    memory_gb = 0.0 if crashed else float(record.get("memory_gb") or 0.0)
    return "\t".join(
        [
            (record.get("commit") or "-------")[:7],
            f"{value:.6f}",
            f"{memory_gb:.1f}",
            record["status"],
            _clean(record.get("description")),
        ]
    )


def render_tsv(records, metric="val_bpb"):
    """results.tsv text: the header, then a row per measured experiment (baseline included)."""
    rows = [tsv_row(r) for r in records if r.get("status") in TSV_STATUSES]
    return "\n".join([tsv_header(metric), *rows]) + "\n"


def parse_jsonl(text):
    """Records from experiments.jsonl text, and warnings for lines that could not be read.

    A torn last line (the process was killed mid-write) is skipped, not fatal: every
    complete line before it is intact.
    """
    records, warnings = [], []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            where = "last line (interrupted write)" if number >= len(lines) - 1 else f"line {number}"
            warnings.append(f"experiments.jsonl {where} is not valid JSON and was skipped")
            continue
        if not isinstance(record, dict) or "id" not in record or "status" not in record:
            warnings.append(f"experiments.jsonl line {number} is not an experiment record; skipped")
            continue
        records.append(record)
    return records, warnings


def format_record(record):
    return json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"


def next_experiment_id(records, taken_ids=()):
    """Ids keep counting across runs; ids of branches left by an interrupted run are skipped."""
    used = [int(r["id"]) for r in records] + [int(i) for i in taken_ids]
    return max(used, default=0) + 1


class Ledger:
    """The two files in one directory (`.autoresearch/<tag>/` in local mode)."""

    def __init__(self, directory, metric="val_bpb"):
        self.directory = Path(directory)
        self.metric = metric
        self.jsonl_path = self.directory / "experiments.jsonl"
        self.tsv_path = self.directory / "results.tsv"
        self.warnings = []

    def read(self):
        if not self.jsonl_path.exists():
            return []
        try:
            text = self.jsonl_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LedgerError(f"cannot read {self.jsonl_path}: {exc}; check its permissions") from None
        records, self.warnings = parse_jsonl(text)
        return records

    def append(self, record):
        """Append one record durably, then re-render results.tsv."""
        self.directory.mkdir(parents=True, exist_ok=True)
        line = format_record(record)
        try:
            with open(self.jsonl_path, "a+b") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() > 0:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":  # a torn line from a killed writer: end it
                        handle.write(b"\n")
                handle.write(line.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise LedgerError(f"cannot write {self.jsonl_path}: {exc}; check disk space and permissions") from None
        self.write_tsv()

    def write_tsv(self):
        records = self.read()
        temporary = self.tsv_path.with_suffix(".tsv.tmp")
        temporary.write_text(render_tsv(records, self.metric), encoding="utf-8")
        os.replace(temporary, self.tsv_path)
