"""`bot schedule`: a nightly cron line whose minute and hour come from the repository's name. Pure.

GitHub starts scheduled workflows late, or drops them, under load, and the load peaks at the
start of every hour ("High load times include the start of every hour", GitHub docs, "Events
that trigger workflows", schedule). Every repository of an organisation that copied the same
`0 1 * * *` would also start its night, and ask Modal for GPUs, at the same moment. A hash of
OWNER/NAME spreads them over the minutes and the hours of a night window, and stays the same
from run to run, so a repository's night does not wander.
"""

import hashlib

FIRST_MINUTE, LAST_MINUTE = 5, 55  # clear of the hour's peak at either end


def cron_for(repository, window_start=0, window_hours=6):
    """(cron, minute, hour) for OWNER/NAME: minute in 5..55, hour in [start, start + hours) UTC."""
    if not repository or "/" not in repository:
        raise ValueError(f"expected OWNER/NAME, got {repository!r}")
    if not 0 <= window_start <= 23 or not 1 <= window_hours <= 24:
        raise ValueError("the window starts at an hour 0-23 and lasts 1-24 hours")
    digest = int.from_bytes(hashlib.sha256(repository.lower().encode()).digest()[:8], "big")
    spread = LAST_MINUTE - FIRST_MINUTE + 1
    minute = FIRST_MINUTE + digest % spread
    hour = (window_start + (digest // spread) % window_hours) % 24
    return f"{minute} {hour} * * *", minute, hour


def schedule_text(repository, window_start=0, window_hours=6):
    """The cron line as it goes in a workflow, and the reason, in the words `bot schedule` prints."""
    cron, minute, hour = cron_for(repository, window_start, window_hours)
    end = (window_start + window_hours) % 24
    return (f'    - cron: "{cron}"  # {hour:02d}:{minute:02d} UTC every night, from a hash of {repository}\n'
            f"\nWhy this minute: GitHub delays or drops scheduled runs under load, which peaks at the start of\n"
            f"every hour, and repositories that share one cron line ask Modal for GPUs at the same moment.\n"
            f"The minute ({FIRST_MINUTE}-{LAST_MINUTE}) and the hour ({window_start:02d}:00-{end:02d}:00 UTC) "
            f"come from a hash of {repository}:\nthe same name always gets the same line. "
            "Paste it under `on: schedule:` in the workflow that runs `bot run`.")
