"""Text views of the ledger: the status table and the counts under it. Pure."""

from bot.replicates import head_mean

STATUS_ORDER = ("keep", "discard", "crash", "gate-failed")


def tracking_head(records):
    """The last kept record with a value: where the tracking branch is."""
    kept = [r for r in records if r.get("status") == "keep" and r.get("metric") is not None]
    return kept[-1] if kept else None


def _comparable(record):
    return {k: v for k, v in (record.get("key") or {}).items() if k != "device"}


def current_segment(records):
    """The records measured under the latest record's comparability key (new data, a new
    budget or harness start a new segment; numbers from different segments do not compare)."""
    if not records:
        return []
    last = _comparable(records[-1])
    return [r for r in records if _comparable(r) == last]


def delta_text(record, digits=6, sigma_unit="σ"):
    """A row's delta and its delta in noise σ, e.g. `-0.018015 (-0.5σ)`; '' when it has none."""
    evidence = record.get("evidence") or {}
    delta, in_sigma = evidence.get("delta"), evidence.get("delta_sigma")
    text = f"{delta:+.{digits}f}" if isinstance(delta, (int, float)) else ""
    if text and isinstance(in_sigma, (int, float)):
        text += f" ({in_sigma:+.1f}{sigma_unit})"
    return text


def decision_sigma(record):
    """The σ this row was decided with (its evidence), as text: what the bar rested on."""
    sigma = (record.get("evidence") or {}).get("sigma")
    return f"{sigma:.4f}" if isinstance(sigma, (int, float)) else "-"


def seconds_text(seconds):
    """A duration that stays informative below a second ("0.4 s", not "0 s")."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def fresh_text(record):
    """The head's fresh-seed estimate beside its pooled mean, when it has one: the runs that
    topped it up after the keep decision did not select it, so they are not optimistic."""
    evidence = record.get("evidence") or {}
    fresh, n = evidence.get("fresh_mean"), evidence.get("fresh_n")
    if not isinstance(fresh, (int, float)) or not n:
        return ""
    return f"; fresh-seed estimate {fresh:.6f} from the {n} run(s) not used to pick it"


def status_table(records, metric="val_bpb", direction="minimize", width=60):
    """The ledger as an aligned text table, best and counts below."""
    if not records:
        return "No experiments yet: run `bot run --local` to measure a baseline and start."
    priced = any(row_usd(r) > 0 for r in records)  # a free night (CPU, offline proposer) shows no cost column
    header = ("id", "commit", metric, "delta", "σ", "status") + (("cost",) if priced else ()) + ("description",)
    rows = [header]
    for r in records:
        if r.get("status") == "note":  # people's requests and directions: not runs
            continue
        value = f"{r['metric']:.6f}" if r.get("metric") is not None else "-"
        description = (r.get("description") or "")
        if len(description) > width:
            description = description[: width - 1] + "…"
        cost = (usd_text(row_usd(r)),) if priced else ()
        rows.append((f"{int(r['id']):04d}", (r.get("commit") or "")[:7], value, delta_text(r),
                     decision_sigma(r), r.get("status", "?"), *cost, description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1]
             for row in rows]
    lines.append("")
    lines.append(summary_line(records, metric, direction))
    return "\n".join(lines)


def summary_line(records, metric="val_bpb", direction="minimize"):
    counts = {status: sum(1 for r in records if r.get("status") == status and r.get("kind") != "baseline")
              for status in STATUS_ORDER}
    experiments = sum(1 for r in records if r.get("kind") == "experiment")
    text = (f"{experiments} experiment(s): {counts['keep']} kept, {counts['discard']} discarded, "
            f"{counts['crash']} crashed")
    if counts["gate-failed"]:
        text += f", {counts['gate-failed']} failed the gate"
    broken = sum(1 for r in records if r.get("kind") == "baseline" and r.get("status") in ("crash", "gate-failed"))
    if broken:  # not experiments, but a newcomer's first rows: "0 crashed" beside them would mislead
        text += f"; {broken} baseline(s) crashed"
    segment = current_segment(records)
    best = tracking_head(segment)  # what the bot compares against: the head, with its reproduced runs
    baselines = [r for r in segment if r.get("kind") == "baseline" and r.get("metric") is not None]
    if best is not None:
        value = head_mean(best, segment)
        text += f". Best {metric} {value:.6f} ({int(best['id']):04d}, {best['description']}{fresh_text(best)})"
        if baselines and len(segment) == len(records):
            gain = value - baselines[0]["metric"]
            text += f", {gain:+.6f} vs the first baseline"
        elif baselines:
            gain = value - baselines[0]["metric"]
            text += (f", {gain:+.6f} vs baseline {int(baselines[0]['id']):04d}; rows before it were "
                     "measured under other settings or data and are not compared")
    return text


def isolation_line(records):
    """How the experiments were isolated: the sandbox, none (and why that matters), or trust mode."""
    levels = [r.get("isolation") or (r.get("key") or {}).get("isolation") for r in records
              if r.get("status") in ("keep", "discard", "crash", "gate-failed")]
    seen = sorted({level or "unrecorded" for level in levels})
    trust = any(any(str(f).startswith("trust mode") for f in r.get("flags") or ()) for r in records) or \
        any((r.get("key") or {}).get("harness_sha256") == {} for r in records)  # `harness: []`
    text = "isolation: " + ", ".join(seen)
    if "none" in seen:
        text += " (experiments ran without the sandbox: they could read this machine's files and environment)"
    if trust:
        text += "; trust mode: the metric is the number train.py printed"
    return text


def row_usd(record):
    """What one ledger row cost: its runs' GPU time plus its proposal (refused attempts included)."""
    return float(record.get("cost_usd") or 0.0) + float((record.get("proposal") or {}).get("usd") or 0.0)


def spent_usd(records):
    """Dollars spent so far: GPU time of every run plus every proposal (refused ones included)."""
    return round(sum(row_usd(r) for r in records), 6)


def usd_text(value):
    """Dollars with the precision small sums need ($0.0074, $0.33, $12.40)."""
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def spending_line(records):
    """Proposals (tokens, dollars, fallbacks) and GPU dollars, or None when nothing was spent."""
    asked = [r["proposal"] for r in records if isinstance(r.get("proposal"), dict)]
    models = sorted({p.get("model") for p in asked if p.get("model")})
    gpu = sum(float(r.get("cost_usd") or 0.0) for r in records)
    if not models:
        if not gpu:
            return None
        billed = sum(float((r.get("timings") or {}).get("billed_s") or 0.0) for r in records)
        minutes = f" ({billed / 60:.1f} min billed)" if billed else ""
        return f"GPU ${gpu:.4f}{minutes}; proposals free (offline); total ${gpu:.4f}"
    tokens = {k: sum(int((p.get("tokens") or {}).get(k) or 0) for p in asked)
              for k in ("input", "cache_write", "cache_read", "output")}
    usd = sum(float(p.get("usd") or 0.0) for p in asked)
    fallbacks = sum(1 for p in asked if "fallback" in str(p.get("proposer")))
    text = (f"proposals: {len(asked)} by {', '.join(models)}; tokens {tokens['input']:,} input, "
            f"{tokens['cache_read']:,} cached read, {tokens['cache_write']:,} cache write, {tokens['output']:,} output; "
            f"${usd:.4f}; GPU ${gpu:.4f}; total ${usd + gpu:.4f}")
    if fallbacks:
        text += f"; {fallbacks} proposed offline while the API was unavailable"
    return text
