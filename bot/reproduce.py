"""`bot reproduce <id>`: run an experiment's exact commit again with fresh seeds and pool the
samples with every earlier run of that commit, so one lucky seed cannot stand alone.

The new runs are recorded as one ledger row of kind `reproduce` (status `reproduced`, which
results.tsv leaves out) pointing at the experiment with `of`. Reproducing the tracking head
adds its samples to "best before" (bot.replicates.head_values). Nothing moves a branch: the
row's evidence says whether the change still clears the noise against its parent.
"""

from bot.decide import decide_noise_aware, mean
from bot.errors import BotError
from bot.replicates import head_values, measure, params_from, segment_sigma
from bot.rows import same_segment

REPRODUCED = "reproduced"


def _find(records, exp_id):
    for record in records:
        if int(record["id"]) == int(exp_id) and record.get("kind") != "reproduce":
            return record
    ids = ", ".join(f"{int(r['id']):04d}" for r in records if r.get("kind") != "reproduce") or "none yet"
    raise BotError(f"no experiment {int(exp_id):04d} in the ledger (ids: {ids}); see `bot status`")


def _short(value):
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 24 else text[:21] + "…"


def pooled_values(record, records):
    """The experiment's own runs and those of every earlier reproduce of it."""
    return head_values(record, records)


def reproduce(loop, exp_id, runs=2):
    """Re-run experiment `exp_id`'s commit `runs` times with fresh seeds; return the new row."""
    records = loop.ledger.read()
    target = _find(records, exp_id)
    if not target.get("commit"):
        raise BotError(f"experiment {int(exp_id):04d} has no measured commit to reproduce")
    head = loop.preflight()
    loop.measure_under(head)
    if not same_segment(target, loop.key):
        stored = {k: v for k, v in (target.get("key") or {}).items() if k != "device"}
        differ = sorted(k for k in set(stored) | set(loop.key) if stored.get(k) != loop.key.get(k))
        detail = "; ".join(f"{k}: {_short(stored.get(k))} then, {_short(loop.key.get(k))} now" for k in differ)
        fix = (f" (e.g. `bot reproduce {int(exp_id)} --local --budget {stored['budget_seconds']:g}`)"
               if "budget_seconds" in differ and isinstance(stored.get("budget_seconds"), (int, float)) else "")
        raise BotError(f"experiment {int(exp_id):04d} was measured under other settings ({detail}): its numbers "
                       f"cannot be pooled with new runs; rerun with the settings it used{fix}")
    return record_runs(loop, records, target, runs)


def top_up_head(loop, records, reference):
    """On resume, measure the tracking head until it has `replicates` runs (a ledger from
    before replicates, or a raised setting): "best before" is always a mean over replicates."""
    missing = int(loop.config.replicates) - len(head_values(reference, records))
    if missing <= 0 or loop.config.decision_rule != "noise-aware":
        return None
    return record_runs(loop, records, reference, missing)


def record_runs(loop, records, target, runs):
    """Run `target`'s commit `runs` times with fresh seeds; append and return the pooled row."""
    exp_id = int(target["id"])
    new_id = loop.next_id(records)
    loop.events("reproduce-start", id=new_id, of=exp_id, runs=runs, commit=target["commit"])
    # replicate numbers from 1: never the configured seed, fresh for this row's id
    new_runs, result = measure(loop.evaluate_seed, new_id, target["commit"], loop.config.seed, runs, first=1)
    segment = [r for r in records if same_segment(r, loop.key)]
    pooled = pooled_values(target, records) + [r["metric"] for r in new_runs if r["metric"] is not None]
    sigma = segment_sigma(segment + [{"replicates": new_runs}])
    parent = next((r for r in reversed(segment) if r.get("commit") == target.get("parent")
                   and r.get("status") == "keep"), None)
    evidence = {"of": int(exp_id), "pooled": pooled, "n": len(pooled), "mean": mean(pooled) if pooled else None,
                "sigma": sigma}
    if result.status != "ok":
        reason = f"a reproduce run failed: {result.reason or result.status}"
    elif parent is not None and pooled:
        verdict = decide_noise_aware(pooled, head_values(parent, records), sigma, loop.config.direction,
                                     params_from(loop.config))
        evidence.update(verdict.evidence, verdict=verdict.status)
        reason = f"pooled {len(pooled)} run(s) vs parent {int(parent['id']):04d}: {verdict.status} — {verdict.reason}"
    else:
        reason = f"pooled {len(pooled)} run(s): mean {evidence['mean']:.6f}"
    row = loop.measured_row(new_id, "reproduce", target["commit"], target.get("parent"), target.get("description"),
                            f"reproduce of {int(exp_id):04d}", target.get("change"), None, result, REPRODUCED,
                            reason, evidence, target.get("branch"), runs=new_runs)
    row["of"] = int(exp_id)
    if evidence["mean"] is not None:  # the row's value is the one its delta and verdict use
        row["metric"], row["new_runs_mean"] = evidence["mean"], row.get("metric")
    loop.ledger.append(row)
    loop.events("result", record=row)
    return row
