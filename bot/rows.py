"""Ledger rows and the comparability key they carry. Pure: values in, dicts out.

A row is written once per experiment (or baseline, or an experiment whose every proposal was
refused); `key` says what must match for two rows' metrics to be compared.
"""

import datetime

from bot.decide import CRASH, GATE_FAILED

STATUS_INVALID = "invalid"


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def comparability_key(config, harness_hashes, bot_version, runner_name, isolation=None):
    """What must match for two runs to be compared (the device is added once a run reports it)."""
    key = {"harness_sha256": harness_hashes, "budget_seconds": float(config.budget_seconds),
           "bot_version": bot_version, "runner": runner_name, "command": config.command,
           "metric": config.metric, "data": config.data}
    if isolation:  # bwrap | none: a sandboxed run and an unsandboxed one are not compared
        key["isolation"] = isolation
    if config.metric_regex:  # only when set, so ledgers written before it existed still match
        key["metric_regex"] = config.metric_regex
    if config.budget_steps:  # a step budget and a wall-clock budget measure different things
        key["budget_steps"] = int(config.budget_steps)
    return key


def same_segment(record, key):
    stored = dict(record.get("key") or {})
    stored.pop("device", None)
    return stored == key


def experiment_row(exp_id, kind, commit, parent, description, rationale, change, digest, result, status,
                   reason, evidence, branch, runs, *, config, key, runner, logs):
    """The row of a measured baseline or experiment (`runs`: its replicates)."""
    values = [r["metric"] for r in runs or () if r["metric"] is not None]
    metric = sum(values) / len(values) if values and status != CRASH else result.metric
    return {
        "id": exp_id, "kind": kind, "commit": commit, "parent": parent, "branch": branch,
        "description": description, "rationale": rationale, "change": change,
        "diff_hash": digest, "status": status, "reason": reason, "evidence": evidence,
        "metric_name": config.metric, "metric": metric if status != CRASH else None,
        "metric_source": result.metric_source, "flags": list(result.flags),
        "summary": result.summary, "memory_gb": round((result.peak_memory_mb or 0) / 1024, 3),
        "run_status": result.status, "exit_code": result.exit_code, "runner": runner,
        "timings": result.timings, "cost_usd": result.cost_usd, "pr": None,
        "seed": runs[0]["seed"] if runs else int(config.seed), "replicates": runs or [],
        "key": dict(key, device=result.device), "finished_at": now(), "isolation": result.isolation,
        "log_tail": result.log_tail if status in (CRASH, GATE_FAILED) else "",
        "log_path": str(logs / f"{exp_id:04d}.log"),
    }


def invalid_row(exp_id, base, spent, reasons, *, config, key):
    """The row of an experiment whose every proposal was refused before any compute: nothing ran."""
    last = reasons[-1] if reasons else "?"
    return {"id": exp_id, "kind": "experiment", "status": STATUS_INVALID, "commit": None, "parent": base,
            "branch": None, "description": last.split(": ", 1)[0] if reasons else "", "rationale": "",
            "reason": f"{len(reasons)} proposal(s) refused before any compute; last: {last}",
            "refusals": list(reasons), "proposal": spent, "metric_name": config.metric, "metric": None,
            "runner": None, "cost_usd": 0.0, "key": dict(key), "finished_at": now(), "evidence": {}, "flags": []}
