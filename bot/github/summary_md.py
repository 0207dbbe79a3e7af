"""What Actions shows people: the night's job summary ($GITHUB_STEP_SUMMARY) and the comment that
answers a queued command once it has run. Pure: records in, markdown out.
"""

MEASURED = ("keep", "discard", "crash", "gate-failed")
MAX_ROWS = 200  # a summary is for reading; the full table is linked on the ledger branch


def _better(a, b, direction):
    return a < b if direction == "minimize" else a > b


def _fmt(value):
    return "—" if value is None else f"{value:.6f}"


def _clean(text, limit=80):
    words = " ".join(str(text or "").split()).replace("|", "\\|")
    return words if len(words) <= limit else words[: limit - 1] + "…"


def night_rows(records, since):
    """The measured rows that finished at or after `since` (ISO 8601 UTC strings compare in order)."""
    return [r for r in records if r.get("status") in MEASURED and str(r.get("finished_at") or "") >= since]


def best_before(records, since, direction):
    """The tracking head's value when the night began: the last kept row before `since`."""
    kept = [r for r in records if r.get("status") == "keep" and r.get("metric") is not None
            and str(r.get("finished_at") or "") < since]
    return kept[-1]["metric"] if kept else None


def night_summary(records, since, metric, direction, links):
    """Markdown: a headline with the best delta, the night's table, links. `links`: {name: url}."""
    rows = night_rows(records, since)
    before = best_before(records, since, direction)
    kept = [r for r in rows if r["status"] == "keep" and r.get("metric") is not None]
    best = None
    for row in kept:
        if best is None or _better(row["metric"], best["metric"], direction):
            best = row
    counts = {s: sum(r["status"] == s for r in rows) for s in MEASURED}
    lines = [f"## autoresearch: {len(rows)} run(s) tonight",
             "",
             ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing was measured",
             ""]
    better = "lower" if direction == "minimize" else "higher"
    if best is not None and before is not None and best["metric"] != before:
        lines.append(f"**Best delta: {best['metric'] - before:+.6f}** {metric} ({_fmt(before)} → "
                     f"{_fmt(best['metric'])}, {better} is better), experiment {int(best['id']):04d}.")
    elif best is not None and before is None:
        lines.append(f"**Baseline: {metric} {_fmt(best['metric'])}** ({better} is better).")
    else:
        lines.append(f"**No improvement tonight**; the head stays at {metric} {_fmt(before)} ({better} is better).")
    if rows:
        lines += ["", f"| # | kind | status | {metric} | Δ vs head before | PR | description |",
                  "|---|---|---|---|---|---|---|"]
        for row in rows[-MAX_ROWS:]:
            value = row.get("metric") if row["status"] != "crash" else None
            delta = f"{value - before:+.6f}" if value is not None and before is not None else "—"
            pr = f"#{row['pr']}" if row.get("pr") else ""
            lines.append(f"| {int(row['id']):04d} | {row.get('kind', 'experiment')} | {row['status']} | {_fmt(value)} "
                         f"| {delta} | {pr} | {_clean(row.get('description'))} |")
        if len(rows) > MAX_ROWS:
            lines.append(f"\n(the last {MAX_ROWS} of {len(rows)}; every row is in the full table)")
    if links:
        lines += ["", " · ".join(f"[{name}]({url})" for name, url in links.items())]
    return "\n".join(lines) + "\n"


def result_text(request, row, metric, direction):
    """The reply to a queued command once it ran: a comment notifies; a body edit does not."""
    what = f"`/autoresearch {request['command']}` (asked by @{request['by']})"
    if row is None:
        return f"{what} ran; its outcome is in the PR body and on the ledger branch."
    better = "lower" if direction == "minimize" else "higher"
    samples = row.get("samples") or []
    pooled = f" over {len(samples)} samples" if len(samples) > 1 else ""
    text = (f"{what} ran as experiment {int(row['id']):04d}: **{row['status']}** — {row.get('reason') or ''}\n\n"
            f"{metric} {_fmt(row.get('metric'))}{pooled} ({better} is better). The PR body has the details.")
    return text
