"""`bot ledger rebuild`: experiment rows recovered from the hidden markers in the bot's PR bodies."""

from bot.github import messages


def records_from_pulls(pulls, exp_prefix):
    """Ledger rows from PR bodies (pure over objects with .body, .number, .head.ref)."""
    rows = []
    for pr in pulls:
        if not pr.head.ref.startswith(exp_prefix):
            continue
        data = messages.parse_marker(pr.body)
        if data and "id" in data and data.get("status") in ("keep", "discard", "crash"):
            rows.append({**{k: v for k, v in data.items() if k != "retries"}, "pr": pr.number, "rebuilt": True})
    return sorted(rows, key=lambda r: r["id"])


def rebuild(gh, ledger, exp_prefix):
    """Add rows the ledger lacks; push. Returns how many were added."""
    have = {r["id"] for r in ledger.read()}
    found = [r for r in records_from_pulls(gh.pulls_with_label("autoresearch"), exp_prefix) if r["id"] not in have]
    for row in found:
        ledger.append(row)
    return len(found)
