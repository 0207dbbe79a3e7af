"""Pull request titles, bodies and comments, and the hidden markers that make writes idempotent.

Pure: records in, markdown out. A marker is an HTML comment GitHub does not render; the bot
finds its own PRs and comments by it (and `bot ledger rebuild` reads experiments back from it).
"""

import json
import re

from bot.report import usd_text

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
# GitHub refuses PR and issue bodies over 65,536 characters (422). Budgets are counted in UTF-8
# bytes, never fewer than characters, so a body within one is within the limit however counted.
BODY_BUDGET = 60_000
REPORT_ROWS, REPORT_KEPT_ROWS = 100, 50  # newest first; the full table is results.tsv on the ledger branch
CHANGE_CHARS = 120  # a description in a report row
DIFF_LINES, DIFF_CHARS = 80, 8_000  # a diff this small is shown whole (collapsed); larger: --stat and a link
NOISE_FLOOR = 0.02  # a keep bar above 2% of the metric: beyond what nearly any single change gains
BETTER = {"minimize": "lower is better", "maximize": "higher is better"}
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


def _size(text):
    return len(text.encode("utf-8"))


def _direction(record, direction=None):
    return direction or (record.get("evidence") or {}).get("direction")


def metric_table(record, reference, direction=None):
    name = record.get("metric_name") or "metric"
    better = BETTER.get(_direction(record, direction))
    value, before = record.get("metric"), (reference or {}).get("metric")
    rows = [f"| | {name}{f' ({better})' if better else ''} |", "|---|---|",
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
             f"total {_number(timings.get('total_s'), 1)} s", memory(record),
             f"device {device}", f"runner {record.get('runner', '–')}", gpu_cost(record)]
    return " · ".join(facts)


def memory(record):
    """'memory 1.5 GB', or 'memory –' when nothing was measured (a CPU run reports 0 VRAM)."""
    gb = record.get("memory_gb")
    return f"memory {gb:.1f} GB" if isinstance(gb, (int, float)) and gb > 0 else "memory –"


def noise_floor(record):
    """A warning when the bar a change must clear is so high that no plausible change clears it
    (noise-aware evidence: `threshold` against the head's metric); '' otherwise."""
    evidence = record.get("evidence") or {}
    bar, before = evidence.get("threshold"), evidence.get("best_before")
    if not isinstance(bar, (int, float)) or not isinstance(before, (int, float)) or not before:
        return ""
    share = bar / abs(before)
    if share <= NOISE_FLOOR:
        return ""
    cause = ("`min_delta`" if bar == evidence.get("min_delta") else
             f"the measurement noise (σ {evidence['sigma']:.4f})" if evidence.get("sigma") else "the measurement noise")
    return (f"> Warning: no plausible change can be kept here. A change must be better by more than {bar:.6f} "
            f"({share:.1%} of {record.get('metric_name') or 'the metric'}), set by {cause}; single changes rarely "
            f"gain more than {NOISE_FLOOR:.0%}. Lower the noise: more `replicates`, a longer `budget_seconds`, a "
            "quieter machine.")


def diff_section(stat, diff="", url=None):
    """A small diff whole, collapsed; a larger one as its --stat and a link to the full diff."""
    lines = ["### Diff", ""]
    if stat:
        lines += ["```", stat.strip(), "```", ""]
    if diff and len(diff.splitlines()) <= DIFF_LINES and len(diff) <= DIFF_CHARS:
        # A fence longer than any backtick run in the diff, so the diff cannot close it.
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", diff)), default=0))
        lines += ["<details><summary>Full diff</summary>", "", f"{fence}diff", diff.rstrip("\n"), fence, "",
                  "</details>", ""]
    elif url:
        lines += [f"[The full diff]({url})", ""]
    return lines if len(lines) > 2 else []


def gpu_cost(record):
    """'GPU $0.3620 (330 s billed)' on a priced runner; 'GPU $0' for this machine's own."""
    usd = float(record.get("cost_usd") or 0.0)
    billed = (record.get("timings") or {}).get("billed_s")
    if not usd and not billed:
        return "GPU $0"
    return f"GPU {usd_text(usd)}" + (f" ({float(billed):.0f} s billed)" if billed else "")


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


def pr_body(record, reference, diff_stat="", log_tail="", running=False, retries=(), diff="", diff_url=None,
            direction=None):
    """The experiment PR's body: what changed, how it measured, what was decided, and why.

    diff: the change's full diff, shown when small; diff_url: where a larger one can be read."""
    body = _pr_body(record, reference, diff_stat, log_tail, running, retries, diff, diff_url, direction)
    if _size(body) > BODY_BUDGET and diff:  # the whole diff is the one optional bulk: link it instead
        body = _pr_body(record, reference, diff_stat, log_tail, running, retries, "", diff_url, direction)
    return body


def _pr_body(record, reference, diff_stat, log_tail, running, retries, diff, diff_url, direction):
    status = "running" if running else record["status"]
    lines = [f"**{STATUS_WORDS.get(status, status)}**" + ("" if running else f": {record.get('reason', '')}"), ""]
    if running:
        lines += ["Training now; this body is replaced with the result when the run ends.", ""]
    else:
        warning = noise_floor(record)
        lines += [warning, ""] if warning else []
        lines += [metric_table(record, reference, direction), ""]
    lines += ["### The change", "", record.get("description") or "", "", record.get("rationale") or "", ""]
    facts = proposal_facts(record)
    if facts:
        lines += [facts, ""]
    lines += diff_section(diff_stat, diff, diff_url)
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


def report_body(tag, records, pr_links, metric="val_bpb", table_url=None, direction=None):
    """The rolling report: the cumulative gain, the kept changes and the latest experiments,
    newest first and bounded (a report PR lives for months: GitHub refuses bodies over 65,536
    characters), with a link to the full table. The marker names the last kept experiment, so a
    merged or closed report is replaced only when something new was kept."""
    delta = cumulative_delta(records)
    baseline = next((r for r in records if r.get("kind") == "baseline" and r.get("metric") is not None), None)
    kept = [r for r in records if r.get("status") == "keep" and r.get("metric") is not None]
    runs = [r for r in records if r.get("status") != "note"]  # requests and directions are not runs
    better = BETTER.get(direction)
    head = [f"Cumulative delta in {metric}{f' ({better})' if better else ''}: **{delta:+.6f}** "
            f"({_number(baseline['metric'])} → {_number(kept[-1]['metric'])})" if delta is not None else
            "No measurement yet.", "",
            f"Merging this PR brings the kept changes of `autoresearch/{tag}` into the default branch.", ""]
    full = f"[results.tsv]({table_url})" if table_url else "results.tsv on the ledger branch"
    tail = [f"Every experiment: {full}.", "", marker(REPORT_MARKER, {"tag": tag, "kept": last_kept(records)})]
    budget = BODY_BUDGET - _size("\n".join(head + tail)) - 1_000  # headings and "N more" lines
    kept_exp = [r for r in kept if r.get("kind") != "baseline"]
    sections = []
    for title, rows, bound in ((f"Kept changes ({len(kept_exp)})", kept_exp, REPORT_KEPT_ROWS),
                               (f"Latest experiments ({len(runs)} in all)", runs, REPORT_ROWS)):
        lines, budget = _report_rows(rows[::-1][:bound], pr_links, metric, budget // 2 if not sections else budget)
        shown = len(lines) - 2
        more = [f"… and {len(rows) - shown} earlier: {full}.", ""] if shown < len(rows) else []
        sections += [f"### {title}, newest first", "", *lines, "", *more] if rows else []
    return "\n".join(head + sections + tail)


def last_kept(records):
    """The id of the last kept change (not the baseline), which the report marker records."""
    return next((r["id"] for r in reversed(records) if r.get("status") == "keep" and r.get("kind") != "baseline"), None)


def _report_rows(records, pr_links, metric, budget):
    """The table's lines (header included) for as many `records` as fit in `budget` bytes, and
    what is left of the budget."""
    lines = [f"| id | {metric} | delta | status | change | PR |", "|---|---|---|---|---|---|"]
    budget -= _size("\n".join(lines))
    for r in records:
        delta_r = (r.get("evidence") or {}).get("delta")
        link = f"#{pr_links[r['id']]}" if pr_links.get(r["id"]) else ("baseline" if r.get("kind") == "baseline" else "ledger only")
        change = " ".join((r.get("description") or "").split()).replace("|", "/")
        change = change if len(change) <= CHANGE_CHARS else change[:CHANGE_CHARS - 1] + "…"
        row = (f"| {int(r['id']):04d} | {_number(r.get('metric'))} | {_number(delta_r) if delta_r is not None else ''} "
               f"| {r['status']} | {change} | {link} |")
        if _size(row) + 1 > budget:
            break
        lines.append(row)
        budget -= _size(row) + 1
    return lines, budget


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
