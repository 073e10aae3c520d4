"""The report's plots: quality against peak memory or training time, one point per method (Pareto), and the
methods' training-loss curves overlaid (``curves.overlay_png``)."""

from __future__ import annotations

from ..curves import overlay_png, png_bytes
from ..results import ZERO_SHOT
from .group import Row, Section


def pareto_png(section: Section, x: str) -> bytes | None:
    """Quality (y) against peak memory or training time (x), one point per tuned method, frontier drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pick = {"memory": (Row.memory, "peak memory (MiB)"),
            "time": (lambda r: r.median("train_seconds"), "training time (s, median over seeds)")}
    value, label = pick[x]
    points = []
    for row in section.rows:
        q, v = row.quality(section.primary), value(row) if row.ok else None
        if row.method != ZERO_SHOT and q and v:
            points.append((v, q[0], q[1], row.method))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for v, mean, std, name in points:
        ax.errorbar([v], [mean], yerr=[std], fmt="o", capsize=3)
        ax.annotate(name, (v, mean), textcoords="offset points", xytext=(5, 5), fontsize=9)
    better = (lambda a, b: a >= b) if section.greater_is_better else (lambda a, b: a <= b)
    frontier, best = [], None
    for v, mean, _, _ in sorted(points):
        if best is None or (better(mean, best) and mean != best):
            frontier.append((v, mean))
            best = mean
    ax.plot(*zip(*frontier), "--", color="grey", linewidth=1, label="Pareto frontier")
    zero = next((r.quality(section.primary) for r in section.rows if r.method == ZERO_SHOT and r.ok), None)
    if zero:
        ax.axhline(zero[0], color="tab:red", linestyle=":", linewidth=1, label="zero-shot")
    ax.margins(x=0.15, y=0.1)
    ax.set_xlabel(label)
    ax.set_ylabel(section.primary + (" (higher is better)" if section.greater_is_better else " (lower is better)"))
    ax.set_title(f"{section.recipe}: quality vs {x}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png_bytes(fig)



def loss_curves_png(section: Section) -> bytes | None:
    """Each method's training loss over steps on one plot (its lowest seed's run); None when no run logged one."""
    lines = {}
    for row in section.rows:
        runs = sorted((r for r in row.ok if r.get("loss_curve")), key=lambda r: r["seed"])
        if runs:
            lines[row.method] = [(int(step), float(loss)) for step, loss in runs[0]["loss_curve"]]
    return overlay_png(lines, f"{section.recipe}: training loss") if lines else None
