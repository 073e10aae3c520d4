"""The search's report: ``DIR/report.md`` + ``report.html`` (plots embedded), the plots as PNGs, and
``best_recipe.toml`` (the best trial's recipe with every option filled in, ready for ``adapterkit run``).

It shows the best trial, every trial (state, parameters, quality, predicted and measured memory, time), the
optimisation history, parameter importances and a parallel-coordinates plot (Optuna's matplotlib
visualisations), and the Pareto front of quality against peak memory and training time across trials.
"""

from __future__ import annotations

import base64
import html
import json
import warnings
from pathlib import Path
from typing import Any

from ..curves import png_bytes
from ..report.render import HTML_HEAD
from ..report.table import _html_table, _md_table


def optuna_plots(study) -> dict[str, bytes]:
    """History, importances and parallel coordinates, each left out when the study has too few trials for it."""
    import matplotlib
    import optuna

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "no complete trials" remarks: the report says so itself
    plots = {}
    for name, draw in (("history", ovm.plot_optimization_history), ("importances", ovm.plot_param_importances),
                       ("parallel", ovm.plot_parallel_coordinate)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's "experimental" notices and too-few-trials remarks
            try:
                axes = draw(study)
            except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. importances of a single finished trial
                continue
        ax = axes.flat[0] if hasattr(axes, "flat") else axes
        if ax.has_data() or ax.figure.axes[1:]:
            ax.figure.set_size_inches(7, 4.2)
            plots[f"{name}.png"] = png_bytes(ax.figure)
    return plots


def pareto_png(rows: list[dict[str, Any]], metric: str, maximize: bool, axis: str) -> bytes | None:
    """Quality (y) against peak memory or training time (x), one point per finished trial, the front drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, label = {"memory": ("peak_rss_mib", "peak RSS (MiB)"), "time": ("train_seconds", "training time (s)")}[axis]
    points = sorted((r[key], r["quality"][metric], r["trial"]) for r in rows
                    if r["state"] == "complete" and r.get(key) and metric in r["quality"])
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    for x, y, n in points:
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front, best = [], None
    for x, y, _ in points:  # cheapest first: a point is on the front if it beats every cheaper one
        if best is None or (y > best if maximize else y < best):
            front.append((x, y))
            best = y
    ax.plot(*zip(*front), "--", color="grey", linewidth=1, label="Pareto front")
    ax.set_xlabel(label)
    ax.set_ylabel(metric)
    ax.set_title(f"quality vs {axis} (numbers: trials)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return png_bytes(fig)


def trial_rows(study, out_dir: Path) -> list[dict[str, Any]]:
    """One row per trial: its Optuna record joined with its result JSON."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        path = out_dir / "results" / f"trial-{t.number:04d}.json"
        result = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        state = t.state.name.lower()
        if t.user_attrs.get("infeasible"):
            state = "infeasible"
        elif state == "fail" and result.get("status") != "failed":
            state = "interrupted"  # its worker died (kill -9): failed by its heartbeat and retried
        rows.append(dict(trial=t.number, state=state, params=t.params, value=t.value,
                         estimate_mib=t.user_attrs.get("estimate_mib"), quality=result.get("quality") or {},
                         peak_rss_mib=result.get("peak_rss_mib"), train_seconds=result.get("train_seconds"),
                         note=t.user_attrs.get("infeasible") or result.get("error") or "",
                         run_dir=result.get("run_dir"), device=result.get("device")))
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def tables(rows: list[dict[str, Any]], metric: str) -> tuple[list[str], list[list[str]]]:
    keys = sorted({k for r in rows for k in r["params"]})
    header = ["trial", "state", *keys, metric, "predicted peak MiB", "peak RSS MiB", "train s", "note"]
    body = [[str(r["trial"]), r["state"], *(_fmt(r["params"].get(k)) for k in keys), _fmt(r["quality"].get(metric)),
             _fmt(r["estimate_mib"] and round(r["estimate_mib"])), _fmt(r["peak_rss_mib"] and round(r["peak_rss_mib"])),
             _fmt(r["train_seconds"] and round(r["train_seconds"], 1)), r["note"][:160]] for r in rows]
    return header, body


def write_report(study, out_dir: Path, recipe_path: Path, metric: str) -> Path:
    """Write report.md/html, the PNGs and best_recipe.toml into ``out_dir``; returns report.md's path."""
    from optuna.study import StudyDirection

    rows = trial_rows(study, out_dir)
    maximize = study.direction == StudyDirection.MAXIMIZE
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "infeasible", "fail", "interrupted")}
    summary = (f"{len(rows)} trials: {counts['complete']} complete, {counts['pruned']} pruned by the sampler, "
               f"{counts['infeasible']} refused by the planner (never started), {counts['fail']} failed"
               + (f", {counts['interrupted']} interrupted" if counts["interrupted"] else ""))
    devices = sorted({r["device"] for r in rows if r["device"]})
    intro = [f"Recipe `{recipe_path}`; {'maximize' if maximize else 'minimize'} {metric}.", summary + ".",
             f"Device: {'; '.join(devices) or 'unknown'}."]
    md, page = ["# adapterkit tune", "", *intro, ""], [HTML_HEAD.replace("adapterkit comparison", "adapterkit tune"),
                                                       "<h1>adapterkit tune</h1>", *(f"<p>{html.escape(i)}</p>" for i in intro)]
    complete = [r for r in rows if r["state"] == "complete"]
    if complete:
        best = study.best_trial
        best_row = next(r for r in rows if r["trial"] == best.number)
        text = (out_dir / best_row["run_dir"] / "recipe.toml").read_text(encoding="utf-8")
        toml = f"# the best trial ({best.number}) of adapterkit tune {recipe_path}: {metric} {best.value:.4f}\n{text}"
        (out_dir / "best_recipe.toml").write_text(toml, encoding="utf-8")
        line = (f"Best: trial {best.number}, {metric} {best.value:.4f}, "
                + ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()) + ". Its recipe: `best_recipe.toml` "
                f"(`adapterkit run {out_dir / 'best_recipe.toml'}`).")
        md += ["## Best trial", "", line, "", "```toml", toml.rstrip(), "```", ""]
        page += ["<h2>Best trial</h2>", f"<p>{html.escape(line)}</p>", f"<pre>{html.escape(toml)}</pre>"]
    else:
        md += ["No trial finished yet.", ""]
        page.append("<p>No trial finished yet.</p>")
    header, body = tables(rows, metric)
    md += ["## Trials", "", _md_table(header, body), ""]
    page += ["<h2>Trials</h2>", _html_table(header, body, "trials")]
    pngs = optuna_plots(study)
    for axis in ("memory", "time"):
        png = pareto_png(rows, metric, maximize, axis)
        if png:
            pngs[f"pareto_{axis}.png"] = png
    if pngs:
        md += ["## Plots", "", *(f"![{n[:-4]}]({n})" for n in pngs), ""]
        page += ["<h2>Plots</h2>", "<p>", *(f'<img alt="{n}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'
                                            for n, b in pngs.items()), "</p>"]
    for name, data in pngs.items():
        (out_dir / name).write_bytes(data)
    (out_dir / "report.md").write_text("\n".join(md), encoding="utf-8")
    (out_dir / "report.html").write_text("\n".join(page) + "\n</body></html>\n", encoding="utf-8")
    return out_dir / "report.md"
