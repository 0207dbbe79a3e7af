"""Seed replicates: which seed each run gets, the samples a record holds, the noise floor of
a comparability segment, and the measure-decide-confirm sequence for one candidate.

Everything except `judge` (which calls the `evaluate` function it is given) is pure.
A record's runs are stored in `record["replicates"]`: one `{seed, status, metric, total_s}`
per run; its `metric` is the mean of the finite ones. Records written before replicates
existed count as one sample, their `metric`.
"""

import dataclasses
import math

from bot.decide import CONFIRM, CRASH, DISCARD, KEEP, NoiseParams, decide_runs, mean, pooled_sigma


def run_seed(base, exp_id, replicate):
    """Replicate 0 of every run uses the configured seed, as autoresearch does, so greedy and
    noise-aware see the same first runs; every further replicate gets its own fresh seed."""
    if replicate == 0:
        return int(base)
    return (int(base) * 1_000_003 + int(exp_id) * 7919 + int(replicate) * 104_729) % 2_147_483_647


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def sample_values(record):
    """The finite metrics of a record's runs (its single metric for pre-replicate records)."""
    runs = record.get("replicates")
    if runs:
        return [r["metric"] for r in runs if r.get("status") == "ok" and _finite(r.get("metric"))]
    return [record["metric"]] if _finite(record.get("metric")) else []


def head_values(reference, records):
    """The tracking head's samples: its own runs plus those `bot reproduce` pooled for it."""
    values = list(sample_values(reference))
    for record in records:
        if record.get("kind") == "reproduce" and record.get("of") == reference.get("id") \
                and record.get("commit") == reference.get("commit"):
            values += sample_values(record)
    return values


def head_mean(reference, records):
    """The value the bot compares against: the mean of the head's own and reproduced runs."""
    values = [v for v in head_values(reference, records) if v is not None]
    return mean(values) if values else reference.get("metric")


def segment_sigma(records):
    """One run's noise σ (a Sigma: value and degrees of freedom), pooled over every record in
    the segment measured with ≥ 2 seeds, weighted by runs (see bot.decide.pooled_sigma)."""
    return pooled_sigma([sample_values(r) for r in records])


def params_from(config):
    return NoiseParams(z=float(config.noise_z), min_delta=float(config.min_delta),
                       max_samples=int(config.max_samples))


def run_entry(seed, result):
    seed = seed if getattr(result, "seed", None) is None else result.seed  # a run taken back keeps its own
    return {"seed": int(seed), "status": result.status,
            "metric": result.metric if result.status == "ok" and _finite(result.metric) else None,
            "total_s": (result.timings or {}).get("total_s")}


def measure(evaluate, exp_id, commit, base_seed, count, first=0):
    """Run `commit` with replicates first..first+count-1; stop at the first failed run."""
    runs, last = [], None
    for replicate in range(first, first + count):
        seed = run_seed(base_seed, exp_id, replicate)
        last = evaluate(exp_id, commit, seed, replicate)
        runs.append(run_entry(seed, last))
        if last.status != "ok":
            break
    return runs, last


def judge(evaluate, exp_id, commit, head, sigma, config):
    """Run a candidate until the rule decides; after a keep, top its runs up to `replicates`
    so the new head's mean is measured like the baseline's, and keep only if the mean of all
    its runs still wins. Returns (decision, runs, result)."""
    runs, values = [], []
    params = params_from(config)
    replicate = 0
    while True:
        seed = run_seed(config.seed, exp_id, replicate)
        result = evaluate(exp_id, commit, seed, replicate)
        runs.append(run_entry(seed, result))
        if runs[-1]["metric"] is not None:
            values.append(runs[-1]["metric"])
        candidate = values if runs[-1]["metric"] is not None else values + [result.metric]
        decision = decide_runs(result.status, candidate, head, sigma, config.direction, config.decision_rule, params, result.reason)
        replicate += 1
        if decision.status != CONFIRM:
            break
    if decision.status == KEEP and len(runs) < config.replicates:
        more, last = measure(evaluate, exp_id, commit, config.seed, config.replicates - len(runs), replicate)
        runs += more
        if last.status != "ok":
            reason = (f"kept on {len(values)} run(s), then a replicate with seed {more[-1]['seed']} "
                      f"failed: {last.reason or last.status}; a change that fails on some seeds is not kept")
            decision = type(decision)(CRASH, reason, dict(decision.evidence, kept_before_replicate=True))
            return decision, runs, last
        # The top-up runs cost nothing extra to use: a keep won on a lucky first seed shows here.
        every = [r["metric"] for r in runs if r["metric"] is not None]
        again = decide_runs("ok", every, head, sigma, config.direction, config.decision_rule,
                            dataclasses.replace(params, max_samples=len(every)))
        first = {k: decision.evidence.get(k) for k in ("n", "value", "delta")}
        # The head's honest estimate: the top-up runs were not used to pick it (the first
        # decision was made without them), so their mean carries no winner's curse.
        fresh = [r["metric"] for r in more]
        again.evidence.update(fresh_mean=mean(fresh), fresh_n=len(fresh))
        if again.status != KEEP:
            decision = type(decision)(
                DISCARD, f"kept on {len(values)} run(s), but the mean of all {len(every)} is not: {again.reason}",
                dict(again.evidence, first_decision=first))
        else:  # the evidence of record is the one on every run the head now stands on
            decision = type(decision)(KEEP, again.reason, dict(again.evidence, first_decision=first))
    return decision, runs, result
