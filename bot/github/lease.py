"""GitHub mode's lease: one `bot run` per repository and tag, across machines. Pure.

The local lock (bot/runlock.py) cannot see a run on another machine: an Actions night and a
laptop on the same tag would both propose on one head and pay twice. The lease is a small file,
lease.json, on the ledger branch, written with the branch's compare-and-swap pushes and renewed by
every row the holder pushes. A lease whose holder stopped renewing it (killed, cancelled) expires
after `ttl` seconds: longer than one experiment can take, so a live holder never loses it.
"""

import datetime

LEASE_FILE = "lease.json"


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def lease_ttl(config):
    """Seconds a silent holder keeps the lease: the longest stretch between two of its rows (the
    baseline's replicates, or a candidate's confirmations, each up to the timeout) plus room for
    proposing and publishing."""
    runs = max(int(config.replicates), int(config.max_samples))
    return runs * float(config.effective_timeout) + 900.0


def new_lease(owner, holder, now, ttl, host=None, pid=None):
    """`owner`: unique per run; `holder`: words for people (host, pid, Actions run); `host` and
    `pid` let a run on the same machine see that the holder is gone."""
    return {"owner": owner, "holder": holder, "since": _iso(now), "renewed": now, "expires": now + ttl, "ttl": ttl,
            "host": host, "pid": pid}


def renewed(lease, now):
    return dict(lease, renewed=now, expires=now + float(lease.get("ttl") or 0))


def released(lease, now):
    return dict(lease, expires=now, released=True)


def conflict(current, owner, now, gone=lambda lease: False):
    """Why `owner` may not run now (a live lease of another run), or None. `gone(lease)` says
    whether its holder is known to have died (a process of this machine that no longer exists)."""
    if not isinstance(current, dict) or current.get("owner") == owner or current.get("released"):
        return None
    if gone(current):
        return None
    try:
        expires = float(current.get("expires"))
    except (TypeError, ValueError):
        return None  # a damaged lease protects nothing
    if expires <= now:
        return None
    return (f"another `bot run` holds this tag's lease on the ledger branch: {current.get('holder', 'unknown')}, "
            f"since {current.get('since', '?')}, renewed {_iso(float(current.get('renewed') or now))}; it expires "
            f"at {_iso(expires)} unless that run goes on. Wait for it, stop it, or use another --tag")


def taken_over(current, owner, now):
    """A note when `owner` takes a lease another run left to expire (it was killed), else None."""
    if not isinstance(current, dict) or current.get("owner") in (None, owner) or current.get("released"):
        return None
    return f"took over the lease of {current.get('holder', 'an earlier run')}, which stopped renewing it (killed?)"
