"""Pull request titles, bodies and comments, and the hidden markers that make writes idempotent.

Pure: records in, markdown out. A marker is an HTML comment GitHub does not render; the bot
finds its own PRs and comments by it (and `bot ledger rebuild` reads experiments back from it).
"""

import json
import re

EXPERIMENT_MARKER = "autoresearch:experiment"
REPORT_MARKER = "autoresearch:report"
COMMENT_MARKER = "autoresearch:comment"
STATUS_WORDS = {"keep": "Kept", "discard": "Discarded", "crash": "Crashed", "running": "Running"}
COMMANDS_HELP = (
    "`/autoresearch retry` re-run this change on the current tracking head (samples are pooled)",
    "`/autoresearch revert` undo a kept change on the tracking branch (as a recorded experiment)",
    "`/autoresearch reject <why>` tell the proposer not to try this again, and why",
    "`/autoresearch try <idea>` give the proposer an idea to try next",
    "`/autoresearch help` list these commands",
)
# Fields copied into the experiment marker: enough to rebuild a ledger row without the branch.
MARKER_FIELDS = ("id", "kind", "commit", "parent", "branch", "description", "rationale", "change",
                 "diff_hash", "status", "reason", "evidence", "metric_name", "metric", "memory_gb",
                 "run_status", "runner", "seed", "key", "finished_at", "timings", "summary", "samples",
                 "proposal", "repair_of")


def marker(kind, data):
    # `--` cannot appear inside an HTML comment; JSON escapes keep it out.
    text = json.dumps(data, sort_keys=True, separators=(",", ":")).replace("--", "-\\u002d")
    return f"<!-- {kind} {text} -->"


def parse_marker(body, kind=EXPERIMENT_MARKER):
    """The JSON of the first `kind` marker in `body`, or None."""
    match = re.search(r"<!-- " + re.escape(kind) + r" (\{.*?\}) -->", body or "", re.S)
    if not match:
        return None
    try:
        return json.loads(match.group(1))
    except json.JSONDecodeError:
        return None


def _number(value, digits=6):
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "–"


def pr_title(record):
    return f"autoresearch {int(record['id']):04d}: {record['description']}"[:240]


def metric_table(record, reference):
    name = record.get("metric_name") or "metric"
    value, before = record.get("metric"), (reference or {}).get("metric")
    rows = [f"| | {name} |", "|---|---|",
            f"| best before ({int(reference['id']):04d}) | {_number(before)} |" if reference else "| best before | – |",
            f"| this run | {_number(value)} |"]
    if isinstance(value, (int, float)) and isinstance(before, (int, float)):
        relative = f" ({(value - before) / before * 100:+.2f}%)" if before else ""
        rows.append(f"| delta | {value - before:+.6f}{relative} |")
    sigma = (record.get("evidence") or {}).get("sigma")
    delta = (record.get("evidence") or {}).get("delta")
    rows.append(f"| delta in noise σ | {delta / sigma:+.2f} |" if sigma and isinstance(delta, (int, float))
                else "| delta in noise σ | not measured (one sample) |")
    samples = record.get("samples") or []
    if len(samples) > 1:
        rows.append(f"| all samples | {', '.join(_number(s) for s in samples)} |")
    return "\n".join(rows)


def run_facts(record):
    summary = record.get("summary") or {}
    timings = record.get("timings") or {}
    device = (record.get("key") or {}).get("device") or summary.get("device") or "–"
    facts = [f"steps {summary.get('num_steps', '–')}", f"training {_number(summary.get('training_seconds'), 1)} s",
             f"total {_number(timings.get('total_s'), 1)} s", f"memory {_number(record.get('memory_gb'), 1)} GB",
             f"device {device}", f"runner {record.get('runner', '–')}", gpu_cost(record)]
    return " · ".join(facts)


def gpu_cost(record):
    """'GPU $0.3620 (330 s billed)' on a priced runner; 'GPU $0' for this machine's own."""
    usd = float(record.get("cost_usd") or 0.0)
    billed = (record.get("timings") or {}).get("billed_s")
    if not usd and not billed:
        return "GPU $0"
    text = f"GPU ${usd:.4f}" if usd < 1 else f"GPU ${usd:.2f}"
    return text + (f" ({float(billed):.0f} s billed)" if billed else "")


def proposal_facts(record):
    """Who proposed the change and what it cost, with any warning (e.g. the API was down); '' for
    proposals that cost nothing and raised nothing."""
    spent = record.get("proposal") or {}
    lines = []
    if spent.get("model"):
        tokens = spent.get("tokens") or {}
        lines.append(f"Proposed by {spent['model']} ({spent.get('proposer')}) in {spent.get('attempts', 1)} attempt(s) · "
                     f"tokens: {tokens.get('input', 0):,} input, {tokens.get('cache_read', 0):,} cached read, "
                     f"{tokens.get('cache_write', 0):,} cache write, {tokens.get('output', 0):,} output · "
                     f"${spent.get('usd', 0.0):.4f}")
    if record.get("repair_of") is not None:
        lines.append(f"Repairs the crash of experiment {int(record['repair_of']):04d}.")
    lines += [f"> Warning: {warning}" for warning in spent.get("warnings") or ()]
    return "\n\n".join(lines)


def pr_body(record, reference, diff_stat="", log_tail="", running=False, retries=()):
    """The experiment PR's body: what changed, how it measured, what was decided, and why."""
    status = "running" if running else record["status"]
    lines = [f"**{STATUS_WORDS.get(status, status)}**" + ("" if running else f": {record.get('reason', '')}"), ""]
    if running:
        lines += ["Training now; this body is replaced with the result when the run ends.", ""]
    else:
        lines += [metric_table(record, reference), ""]
    lines += ["### The change", "", record.get("description") or "", "", record.get("rationale") or "", ""]
    facts = proposal_facts(record)
    if facts:
        lines += [facts, ""]
    if diff_stat:
        lines += ["### Diff", "", "```", diff_stat.strip(), "```", ""]
    if not running:
        lines += ["### Run", "", run_facts(record), ""]
    for number, retry in enumerate(retries, start=1):
        lines += [f"### Retry {number}", "", f"{STATUS_WORDS.get(retry['status'], retry['status'])}: "
                  f"{retry.get('reason', '')} (samples {', '.join(_number(s) for s in retry.get('samples', []))})", ""]
    if log_tail:
        lines += ["<details><summary>Log tail</summary>", "", "```", log_tail.strip()[-3000:].replace("```", "`‵`"),
                  "```", "", "</details>", ""]
    lines += ["### Commands", "", *[f"- {c}" for c in COMMANDS_HELP], ""]
    data = {k: record.get(k) for k in MARKER_FIELDS if k in record}
    data["retries"] = list(retries)
    lines.append(marker(EXPERIMENT_MARKER, data))
    return "\n".join(lines)


def report_title(tag, records, direction="minimize"):
    delta = cumulative_delta(records)
    return f"autoresearch/{tag}: {sum(1 for r in records if r.get('kind') == 'experiment' and r['status'] == 'keep')} kept" + (
        f", {delta:+.6f} cumulative" if delta is not None else "")


def cumulative_delta(records):
    """Latest kept metric minus the first baseline's (None before anything is measured)."""
    baselines = [r for r in records if r.get("kind") == "baseline" and r.get("metric") is not None]
    kept = [r for r in records if r.get("status") == "keep" and r.get("metric") is not None]
    if not baselines or not kept:
        return None
    return kept[-1]["metric"] - baselines[0]["metric"]


def report_body(tag, records, pr_links, metric="val_bpb"):
    """The rolling report: cumulative gain and every experiment of the night, with links."""
    delta = cumulative_delta(records)
    baseline = next((r for r in records if r.get("kind") == "baseline" and r.get("metric") is not None), None)
    kept = [r for r in records if r.get("status") == "keep" and r.get("metric") is not None]
    lines = [f"Cumulative delta in {metric}: **{delta:+.6f}** "
             f"({_number(baseline['metric'])} → {_number(kept[-1]['metric'])})" if delta is not None else
             "No measurement yet.", "",
             f"Merging this PR brings the kept changes of `autoresearch/{tag}` into the default branch.", "",
             f"| id | {metric} | delta | status | change | PR |", "|---|---|---|---|---|---|"]
    for r in (r for r in records if r.get("status") != "note"):  # requests and directions are not runs
        delta_r = (r.get("evidence") or {}).get("delta")
        link = f"#{pr_links[r['id']]}" if pr_links.get(r["id"]) else ("baseline" if r.get("kind") == "baseline" else "ledger only")
        lines.append(f"| {int(r['id']):04d} | {_number(r.get('metric'))} | {_number(delta_r) if delta_r is not None else ''} "
                     f"| {r['status']} | {(r.get('description') or '').replace('|', '/')} | {link} |")
    lines += ["", marker(REPORT_MARKER, {"tag": tag})]
    return "\n".join(lines)


COMMENT_LIMIT = 65_536  # GitHub refuses a longer comment body (422)


def comment(kind, text, key):
    """A bot comment with a marker naming what it answers (so a rerun never posts it twice)."""
    tail = f"\n\n{marker(COMMENT_MARKER, {'kind': kind, 'key': key})}"
    room = COMMENT_LIMIT - len(tail) - 20
    if len(text) > room:
        text = text[:room] + " … (cut)"
    return text + tail


def quote(text, limit=300):
    """A person's text, safe to show in a bot comment: one inline code span that cannot be
    closed early (backticks become ˋ), with no line breaks, no HTML comment (nothing that looks
    like a bot marker), no @-mention (a zero-width space follows each @), at most `limit` chars."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[:limit - 1] + "…"
    flat = flat.replace("`", "ˋ").replace("<!--", "<!‐‐").replace("@", "@\u200b")
    return f"`{flat}`" if flat else "` `"


def recorded_note(kind, text, cut):
    """The reply to `/autoresearch try|reject`: what was recorded, quoted, and whether it was cut."""
    note = f" (cut to its first {len(text):,} characters; {cut:,} more were not kept)" if cut else ""
    return f"Recorded for the proposer: {kind} — {quote(text)}{note}"


def untrusted_reply(number, problem):
    return (f"Not run: the experiment marker on #{number} is not trusted — {problem}. The bot acts only on "
            "the PRs it opened itself. Nothing was changed.")


def already_merged_reply(number, tracking):
    return (f"Nothing to retry: #{number} was kept and is already merged into `{tracking}`, so a retry would "
            "measure a change the tracking head already has. To undo it, comment `/autoresearch revert`; to "
            "ask for a variation, `/autoresearch try <idea>`.")


def needs_review_comment(record, bound):
    return comment("needs-review", (
        f"This change improved {record.get('metric_name')} by {abs((record.get('evidence') or {}).get('delta') or 0):.6f}, "
        f"more than the {bound:.1%} a single change may gain before a human looks. It was **not merged "
        "automatically**: check the diff and the log for a harness or evaluation problem, then comment "
        "`/autoresearch retry` to re-measure it and merge it if it holds."), f"needs-review-{record['id']}")
