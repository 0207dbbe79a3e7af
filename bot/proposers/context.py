"""What the model proposer is shown: the stable prefix (instructions, program.md, the harness's
public API, the editable files at the head) and the history of the run. Pure.

The prefix changes only when the head moves, so it is sent as cached system blocks; the
history changes every experiment and goes in the user turn. Never shown: the harness's
code, the validation data, the result channel.
"""

from bot.proposers.edits import TOOL_NAME
from bot.report import delta_text

DISCARD_STREAK = 5  # this many discards in a row and the model is asked to change direction
RECENT = 25  # experiments listed in full
CRASH_TAILS = 3  # recent crashes whose log tails are shown
TAIL_CHARS = 1500

INSTRUCTIONS = f"""You are the researcher of an automated experiment loop. Each experiment makes ONE change to
the editable files, trains for a fixed wall-clock budget, and is kept only if the metric
improves by more than the measurement noise. Propose the next experiment by calling the
`{TOOL_NAME}` tool once, with a one-line description, a short rationale and search/replace
edits (copy each search text verbatim from the files below, with enough context to match
exactly one place). Rules:
- One idea per experiment. Edit only the editable files listed below.
- No new packages (the standard library, torch and numpy only); no subprocesses, network or
  file access outside the working directory.
- Never change only a random seed, and never repeat an experiment from the history.
- The change must run as is: a crash wastes a run. Keep the `---` summary block and the final
  `prepare.evaluate_bpb(...)` call working.
"""

HARNESS_NOTES = """The frozen harness (prepare.py; never edited, its code is not shown) offers train.py:
- `prepare.make_dataloader(split, batch_size, seq_len, device)`: batches of token ids from the
  training split (`"train"`; the validation split is not available to training).
- `prepare.VOCAB_SIZE`, `prepare.MAX_SEQ_LEN`: the tokenizer's vocabulary and the context length.
- `prepare.TIME_BUDGET`: training seconds; the run is stopped shortly after it, whatever it prints.
- `prepare.evaluate_bpb(model, batch_size)`: hands the trained model over; the harness scores it
  afterwards in its own process with plain PyTorch operations on the validation split. The model
  must map token ids (B, T) to logits (B, T, VOCAB_SIZE) and must be causal.
- The run prints a `---` line then `key: value` lines (val_bpb, training_seconds, peak_vram_mb, ...).
"""


def system_blocks(program_text, base_files, editable, harness_notes=HARNESS_NOTES):
    """The cached prefix as Messages API text blocks; the last carries the cache breakpoint."""
    files = "\n\n".join(f"<file path=\"{path}\">\n{text}\n</file>" for path, text in sorted(base_files.items()))
    return [
        {"type": "text", "text": INSTRUCTIONS},
        {"type": "text", "text": f"<program.md>\n{program_text.strip()}\n</program.md>"},
        {"type": "text", "text": harness_notes},
        {"type": "text", "text": f"Editable files (globs: {', '.join(editable)}), as they are at the current best "
                                 f"version:\n\n{files}", "cache_control": {"type": "ephemeral"}},
    ]


def _delta(record):
    return delta_text(record, digits=4, sigma_unit=" sigma")  # plain words for the model


def _line(record):
    metric = record.get("metric")
    value = f"{metric:.4f}" if isinstance(metric, (int, float)) else "-"
    reason = (record.get("reason") or "").split("\n")[0][:120]
    repair = f" [repair of {int(record['repair_of']):04d}]" if record.get("repair_of") is not None else ""
    return (f"{int(record['id']):04d} {record.get('status')} {value} {_delta(record)} "
            f"| {record.get('description') or ''}{repair} | {reason}")


def history_text(records, metric="val_bpb", direction="minimize", running=()):
    """The run so far, newest last: the head, every kept change, recent experiments, crash
    tails, people's direction, what is running now, and a nudge after a run of discards."""
    runs = [r for r in records if r.get("status") != "note"]
    kept = [r for r in runs if r.get("status") == "keep"]
    lines = [f"Metric: {metric} ({'lower' if direction == 'minimize' else 'higher'} is better)."]
    if kept:
        head = kept[-1]
        lines.append(f"Current best: {int(head['id']):04d} at {head.get('metric', float('nan')):.4f} "
                     f"({head.get('description')}).")
    if len(kept) > 1:
        lines += ["", "Kept changes, in order:"] + [f"- {int(r['id']):04d} {r.get('description')} {_delta(r)}"
                                                     for r in kept[1:]]
    experiments = [r for r in runs if r.get("kind") != "baseline"]
    if experiments:
        lines += ["", f"Recent experiments (id status {metric} delta | description | reason), of "
                      f"{len(experiments)} so far:"] + [_line(r) for r in experiments[-RECENT:]]
    crashes = [r for r in experiments if r.get("status") == "crash" and r.get("log_tail")][-CRASH_TAILS:]
    for r in crashes:
        lines += ["", f"Log tail of crashed {int(r['id']):04d} ({r.get('description')}):",
                  r["log_tail"][-TAIL_CHARS:]]
    direction_notes = _human_notes(records)
    if direction_notes:
        lines += ["", "Direction from the people who run this (follow it):"] + direction_notes
    if running:
        lines += ["", "Running now (do not propose these again): " + "; ".join(running)]
    streak = 0
    for r in reversed(experiments):
        if r.get("status") == "keep":
            break
        streak += r.get("status") in ("discard", "invalid")
    if streak >= DISCARD_STREAK:
        lines += ["", f"The last {streak} experiments were all discarded. Change direction: try a different "
                      "part of the model, optimizer or schedule, not another variation of the recent ideas."]
    return "\n".join(lines)


def _human_notes(records):
    by_id = {r.get("id"): r for r in records}
    notes = []
    for r in records:
        if r.get("kind") == "try":
            notes.append(f"- try (from @{r.get('by')}): {r.get('text')}")
        elif r.get("kind") == "reject":
            about = by_id.get(r.get("about")) or {}
            notes.append(f"- rejected {int(r['about']):04d} ({about.get('description')}) (from @{r.get('by')}): "
                         f"{r.get('text') or 'no reason given'}")
    return notes[-10:]


def request_text(records, metric, direction, running=(), repair=None):
    """The user turn: the history, then what to do now."""
    text = history_text(records, metric, direction, running)
    if repair:
        text += (f"\n\nExperiment {int(repair['id']):04d} ({repair['description']}) crashed. Its files as they were "
                 f"are below, and its log tail. Propose the smallest fix that makes that change run as intended: "
                 f"edits against these files (not the best version), the same idea, nothing else."
                 f"\n\nLog tail:\n"
                 f"{repair['log_tail'][-TAIL_CHARS:]}\n\n"
                 + "\n\n".join(f"<file path=\"{p}\">\n{t}\n</file>" for p, t in sorted(repair["files"].items())))
    return text + f"\n\nPropose the next experiment now with the `{TOOL_NAME}` tool."


def refusal_text(error):
    """The tool result that sends a refused proposal back with the precise reason."""
    return (f"This proposal was refused before any compute: {error}\n"
            f"Fix exactly that and call `{TOOL_NAME}` again (or propose a different idea).")
