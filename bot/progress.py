"""The progress report: numbers (keep rate, cumulative delta, GPU time, cost), the data of
the progress plot, and the markdown report. Pure; bot/plot.py draws the PNG from
`progress_points`.
"""

from bot.replicates import head_mean, head_values, sample_values, segment_sigma
from bot.report import (current_segment, decision_sigma, fresh_text, isolation_line, row_usd, spending_line, spent_usd,
                        usd_text)


def run_seconds(record):
    """Seconds of compute a record took: all its runs (replicates, confirmations)."""
    runs = record.get("replicates") or ()
    if runs:
        return sum(run.get("total_s") or 0.0 for run in runs)
    return float((record.get("timings") or {}).get("total_s") or 0.0)


def run_count(record):
    return len(record.get("replicates") or ()) or 1


def report_stats(records, direction="minimize"):
    """The headline numbers of a ledger (all segments together), and the σ of the current
    segment: the one the next decision will use, not a mix of settings never compared."""
    experiments = [r for r in records if r.get("kind") == "experiment"]
    kept = [r for r in experiments if r.get("status") == "keep"]
    baselines = [r for r in records if r.get("kind") == "baseline" and r.get("metric") is not None]
    heads = [r for r in records if r.get("status") == "keep" and r.get("metric") is not None]
    head = heads[-1] if heads else None
    first = baselines[0] if baselines else None
    head_value = head_mean(head, records) if head else None  # pooled with `bot reproduce` runs, as decisions use it
    cumulative = head_value - first["metric"] if head and first else None
    sigma = segment_sigma(current_segment(records))
    return {
        "experiments": len(experiments), "kept": len(kept),
        "discarded": sum(r.get("status") == "discard" for r in experiments),
        "crashed": sum(r.get("status") == "crash" for r in experiments),
        "keep_rate": len(kept) / len(experiments) if experiments else None,
        "runs": sum(run_count(r) for r in records),
        "compute_s": sum(run_seconds(r) for r in records),
        "cost_usd": spent_usd(records),  # GPU time and proposals
        "baseline": first, "head": head, "head_value": head_value, "cumulative_delta": cumulative,
        "sigma": sigma, "sigma_df": getattr(sigma, "df", None), "direction": direction,
    }


def stats_line(stats):
    """One line for `bot status`: keep rate, head vs first baseline, noise, compute, cost."""
    parts = []
    if stats["keep_rate"] is not None:
        parts.append(f"keep rate {stats['keep_rate']:.0%}")
    if stats["cumulative_delta"] is not None:
        text = f"head {stats['cumulative_delta']:+.6f} vs the first baseline"
        if stats["sigma"]:
            text += f" ({stats['cumulative_delta'] / stats['sigma']:+.1f}σ)"
        parts.append(text)
    if stats["sigma"] is not None:
        parts.append(f"noise σ {stats['sigma']:.6f} ({stats['sigma_df']} df; the next decision's)")
    else:
        parts.append("noise σ unknown (1 run per commit)")
    parts.append(f"{stats['runs']} run(s), {stats['compute_s'] / 60:.1f} min of compute, ${stats['cost_usd']:.2f}")
    return "; ".join(parts)


def progress_points(records):
    """What progress.png shows: every measured experiment a point; kept ones (with their
    description) highlighted; the tracking head's mean as a step line over experiment ids."""
    points, kept, steps = [], [], []
    for r in records:
        if r.get("kind") not in ("baseline", "experiment") or r.get("metric") is None:
            continue
        x = int(r["id"])
        points.append({"x": x, "y": r["metric"], "status": r.get("status"), "n": len(sample_values(r)),
                       "baseline": r.get("kind") == "baseline"})
        if r.get("status") == "keep":
            kept.append({"x": x, "y": r["metric"], "label": r.get("description") or ""})
            steps.append((x, r["metric"]))
    if steps and points and points[-1]["x"] > steps[-1][0]:
        steps.append((points[-1]["x"], steps[-1][1]))  # the head holds until the last experiment
    return {"points": points, "kept": kept, "best_line": steps}


def _fmt(value, spec=".6f"):
    return "-" if value is None else format(value, spec)


def markdown_report(records, metric="val_bpb", direction="minimize", image=None):
    """The report as markdown: headline numbers, then every experiment as a table row."""
    stats = report_stats(records, direction)
    lines = ["# autoresearch report", ""]
    if image:
        lines += [f"![progress]({image})", ""]
    head, first = stats["head"], stats["baseline"]
    lines.append(f"- experiments: {stats['experiments']} ({stats['kept']} kept, {stats['discarded']} discarded, "
                 f"{stats['crashed']} crashed); keep rate {_fmt(stats['keep_rate'], '.0%')}")
    if head:
        lines.append(f"- best (tracking head): {metric} {stats['head_value']:.6f} — {int(head['id']):04d} "
                     f"{head.get('description') or ''} (mean of {len(head_values(head, records))} run(s){fresh_text(head)})")
    if first:
        lines.append(f"- first baseline: {first['metric']:.6f}; cumulative delta {_fmt(stats['cumulative_delta'], '+.6f')}")
    lines.append(f"- noise σ (one run, current segment, {stats['sigma_df']} df): {_fmt(stats['sigma'])}")
    lines.append(f"- {isolation_line(records)}")
    lines.append(f"- compute: {stats['runs']} run(s), {stats['compute_s'] / 60:.1f} min; cost ${stats['cost_usd']:.2f}")
    spending = spending_line(records)
    if spending:
        lines.append(f"- {spending}")
    lines += ["", f"| id | commit | {metric} | runs | delta | delta/σ | σ at decision | status | cost | description |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        evidence = r.get("evidence") or {}
        description = (r.get("description") or "").replace("|", "\\|")
        lines.append(f"| {int(r['id']):04d} | {(r.get('commit') or '')[:7]} | {_fmt(r.get('metric'))} | "
                     f"{run_count(r)} | {_fmt(evidence.get('delta'), '+.6f')} | "
                     f"{_fmt(evidence.get('delta_sigma'), '+.1f')} | {decision_sigma(r)} | {r.get('status')} | "
                     f"{usd_text(row_usd(r))} | {description} |")
    return "\n".join(lines) + "\n"
