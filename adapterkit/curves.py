"""A run's training curves as PNGs, drawn with matplotlib from the Trainer's log history (``history.json``):
training loss, learning rate, and each eval metric over steps when the run evaluated during training.
``report/`` overlays the loss curves of compared methods with ``overlay_png``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

# What a Trainer adds to its eval metrics that measures speed or setup, not quality: not a curve worth drawing,
# not a quality in metrics.json (tasks/rows.py) nor in a comparison (results.py).
TIMINGS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "eval_model_preparation_time")
_NOT_CURVES = {*TIMINGS, "epoch", "step"}


def series(history: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(step, value) for every log entry holding a number under ``key``."""
    return [(int(e["step"]), float(e[key])) for e in history
            if isinstance(e.get(key), (int, float)) and not isinstance(e.get(key), bool) and "step" in e]


def curve_names(history: list[dict[str, Any]]) -> list[str]:
    """The curves a run has: loss and learning rate while training, and the eval metrics logged during training
    (the final summary entry, ``train_loss`` etc., is no curve)."""
    names = [k for k in ("loss", "learning_rate") if len(series(history, k)) >= 1]
    evals = sorted({k for e in history for k in e if k.startswith("eval_") and k not in _NOT_CURVES})
    return names + [k for k in evals if series(history, k)]


def _png(lines: dict[str, list[tuple[int, float]]], ylabel: str, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for label, points in lines.items():
        steps, values = zip(*points)
        ax.plot(steps, values, marker="o" if len(points) < 20 else None, markersize=3, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(lines) > 1:
        ax.legend(fontsize=8)
    return png_bytes(fig)


def png_bytes(fig) -> bytes:
    """A matplotlib figure as PNG bytes (no software stamp, so the same plot gives the same bytes), closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def draw(history: list[dict[str, Any]], folder: Path, title: str = "") -> list[Path]:
    """One PNG per curve (``loss.png``, ``learning_rate.png``, ``eval_<metric>.png``) into ``folder``."""
    written = []
    for name in curve_names(history):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name.replace('/', '_')}.png"  # trl logs names like eval_rewards/chosen
        path.write_bytes(_png({name: series(history, name)}, name.replace("_", " "), f"{title} {name}".strip()))
        written.append(path)
    return written


def overlay_png(curves: dict[str, list[tuple[int, float]]], title: str, ylabel: str = "training loss") -> bytes | None:
    """Several runs' curves on one plot ({label: [(step, value)]}); None when no run has one."""
    kept = {label: points for label, points in curves.items() if points}
    return _png(kept, ylabel, title) if kept else None
