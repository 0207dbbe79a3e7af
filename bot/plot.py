"""progress.png in autoresearch's style, drawn with matplotlib's Agg backend (no display).

matplotlib is an optional extra (`pip install 'autoresearch-bot[report]'`): the bot runs
without it, and only `bot report` needs it.
"""

from bot.errors import BotError


def write_progress_png(data, path, metric="val_bpb", title="autoresearch progress"):
    """Draw `progress_points(records)` to `path`: grey discarded points, green kept points
    labelled with their change, and the tracking head as a step line."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib import pyplot
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise BotError("progress.png needs matplotlib: pip install 'autoresearch-bot[report]' "
                       "(or run `bot report --no-plot` for the markdown only)") from None
    figure, axes = pyplot.subplots(figsize=(12, 6), dpi=100)
    try:
        others = [p for p in data["points"] if p["status"] != "keep"]
        axes.scatter([p["x"] for p in others], [p["y"] for p in others], s=18, color="#b0b0b0",
                     label="discarded", zorder=2)
        kept = data["kept"]
        axes.scatter([k["x"] for k in kept], [k["y"] for k in kept], s=40, color="#2ca02c",
                     edgecolors="black", linewidths=0.5, label="kept", zorder=3)
        if data["best_line"]:
            xs, ys = zip(*data["best_line"])
            axes.step(xs, ys, where="post", color="#2ca02c", linewidth=1.5, label="tracking head", zorder=1)
        for k in kept:
            axes.annotate(k["label"][:40], (k["x"], k["y"]), textcoords="offset points", xytext=(4, 6),
                          fontsize=7, rotation=20, color="#1f5f1f")
        axes.set_xlabel("experiment")
        axes.set_ylabel(metric)
        experiments = [p for p in data["points"] if not p["baseline"]]
        n_kept = sum(p["status"] == "keep" for p in experiments)
        axes.set_title(f"{title}: {len(experiments)} experiments measured, {n_kept} kept")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper right")
        figure.tight_layout()
        figure.savefig(path)
    finally:
        pyplot.close(figure)
    return path
