"""What `bot` commands print while they work: the progress bar and the event lines. Part of
the CLI layer (bot/cli.py and bot/github/cli.py use it)."""

import sys
import threading

import click

from bot.summary import progress_fraction


class ProgressBar:
    """One self-rewriting line on a terminal; silent when output is not a terminal."""

    def __init__(self, stream=None, clock=None):
        import time

        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label = ""
        self.lock = threading.Lock()
        self.clock = clock or time.monotonic
        self.started = self.clock()

    def start(self, label):
        self.label = label
        self.started = self.clock()
        self.draw(0.0)

    def on_line(self, line):
        fraction = progress_fraction(line)
        if fraction is not None:
            self.draw(fraction)

    def draw(self, fraction):
        if not self.enabled:
            return
        filled = int(round(fraction * 30))
        with self.lock:
            self.stream.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {fraction:5.1%}{self.remaining(fraction)} "
                              f"{self.label[:50]}\033[K")
            self.stream.flush()

    def remaining(self, fraction):
        """' ~42 s left' from the pace so far (training only: start-up and evaluation come on top)."""
        elapsed = self.clock() - self.started
        if fraction < 0.02 or elapsed <= 0:
            return ""
        return f" ~{elapsed * (1 - fraction) / fraction:.0f} s left"

    def clear(self):
        if self.enabled:
            with self.lock:
                self.stream.write("\r" + " " * 100 + "\r")
                self.stream.flush()


def printer(bar, metric):
    from bot.report import seconds_text

    reproducing = {}  # the reproduce row being measured: its runs are numbered 1..N

    def on_event(kind, **facts):
        bar.clear()  # a message never shares the progress bar's line
        if kind == "tracking-created":
            click.echo(f"Created tracking branch {facts['branch']} at {facts['commit'][:7]}")
        elif kind == "tracking-moved":
            click.echo(f"Moved tracking branch {facts['branch']} from {facts['old'][:7]} to your HEAD "
                       f"{facts['commit'][:7]} (it held no kept experiment yet)")
        elif kind == "resume":
            ref = facts["reference"]
            click.echo(f"Resuming: {facts['experiments']} ledger row(s); tracking head {ref['commit'][:7]} "
                       f"measured at {metric} {ref['metric']:.6f} (experiment {int(ref['id']):04d})")
        elif kind == "baseline-start":
            click.echo(f"Baseline {facts['id']:04d}: measuring the tracking head {facts['commit'][:7]}")
            bar.start("baseline")
        elif kind == "experiment-start":
            click.echo(f"Experiment {facts['id']:04d}: {facts['description']}")
            spent = facts.get("proposal") or {}
            if spent.get("model"):
                tokens = spent.get("tokens") or {}
                click.echo(f"  proposed by {spent['model']} in {spent.get('attempts', 1)} attempt(s): "
                           f"{sum(tokens.values()):,} tokens ({tokens.get('cache_read', 0):,} cached), ${spent.get('usd', 0):.4f}"
                           + (f", repairing {int(spent['repair_of']):04d}" if spent.get("repair_of") is not None else ""))
            for warning in spent.get("warnings") or ():
                click.echo(f"  warning: {warning}")
            bar.start(facts["description"])
        elif kind == "proposal-wait":
            if facts["seconds"] >= 1:
                click.echo(f"  waited {facts['seconds']:.1f} s for the proposer")
        elif kind == "proposal-stale":
            click.echo(f"  the prepared proposal ({facts['description']}) no longer applies to the new head; asking again")
        elif kind == "replicate-start":
            if reproducing.get("id") == facts["id"]:
                reproducing["done"] += 1
                click.echo(f"  run {reproducing['done']} of {reproducing['runs']} with seed {facts['seed']}")
            else:
                click.echo(f"  run {facts['replicate'] + 1} of {facts['id']:04d} with seed {facts['seed']}")
            bar.start(f"replicate {facts['replicate'] + 1}")
        elif kind == "run-reused":
            click.echo(f"  run {facts['replicate'] + 1} of {facts['id']:04d}: taken from before the last stop "
                       f"(seed {facts['seed']}, same files and settings)")
        elif kind == "reproduce-start":
            reproducing.update(id=facts["id"], runs=facts["runs"], done=0)
            click.echo(f"Reproducing {facts['of']:04d} ({facts['commit'][:7]}) with {facts['runs']} fresh seed(s) "
                       f"as {facts['id']:04d}")
        elif kind == "proposal-refused":
            click.echo(f"  refused proposal ({facts['description']}): {facts['reason']}")
        elif kind == "result":
            bar.clear()
            r = facts["record"]
            value = f"{metric} {r['metric']:.6f}" if r.get("metric") is not None else "no metric"
            seconds = (r.get("timings") or {}).get("total_s")
            took = f" in {seconds_text(seconds)}" if isinstance(seconds, (int, float)) else ""
            which = f"{int(r['id']):04d} " if facts.get("batch") else ""  # --parallel: results follow the starts
            click.echo(f"  -> {which}{r['status']}: {value}{took} ({r['reason']})")
            for flag in r.get("flags") or ():
                click.echo(f"     note: {flag}")
        elif kind == "reconciled":
            click.echo(f"Finished an interrupted keep: tracking moved to {facts['record']['commit'][:7]}")
        elif kind == "warning":
            click.echo(f"warning: {facts['message']}", err=True)
        elif kind == "stop":
            click.echo(f"Stopped: {facts['reason']}")
    return on_event
