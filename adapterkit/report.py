"""The comparison report: result JSONs (``adapterkit.results``) -> ``report.md`` + ``report.html`` + plots.

One section per compared recipe (recipe, task, model), one row per method: quality as mean ± sample
standard deviation over the seeds that finished, speed and memory as the median over those seeds,
and, when ``full`` is among the rows, "memory vs full" and "time vs full" (ratios of medians) and
"quality vs full" (difference of the primary metric's means). Peak memory is the CUDA max-allocated
figure on GPU, the process RSS high-water mark on CPU; "time" is the training loop's time.
Skipped and failed methods are listed with their reason. Two Pareto plots (quality vs peak memory,
quality vs training time) are written as PNGs next to the report and embedded (base64) in the HTML,
which therefore needs no network and no other file. The best method's per-label report follows.

The output depends only on the results, so ``adapterkit report DIR`` rebuilds it byte for byte.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import ZERO_SHOT, read_dir

REFERENCE = "full"


@dataclass
class Row:
    method: str
    results: list[dict[str, Any]]
    ok: list[dict[str, Any]] = field(init=False)

    def __post_init__(self):
        self.ok = [r for r in self.results if r["status"] == "ok"]

    def quality(self, metric: str) -> tuple[float, float] | None:
        values = [r["quality"][metric] for r in self.ok if metric in (r.get("quality") or {})]
        if not values:
            return None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    def median(self, key: str) -> float | None:
        values = [r[key] for r in self.ok if r.get(key) is not None]
        return statistics.median(values) if values else None

    def memory(self) -> float | None:
        values = [r.get("cuda_max_allocated_mib") or r.get("peak_rss_mib") for r in self.ok]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def problems(self) -> str:
        seen = dict.fromkeys(f"{r['status']}: {r['error']}" for r in self.results if r["status"] != "ok")
        return "; ".join(seen)


@dataclass
class Section:
    recipe: str
    task: str
    model: str
    primary: str
    greater_is_better: bool
    rows: list[Row]

    @property
    def metrics(self) -> list[str]:
        names = dict.fromkeys([self.primary])
        for row in self.rows:
            for r in row.ok:
                names.update(dict.fromkeys(sorted(r["quality"])))
        return list(names)

    def reference(self) -> Row | None:
        return next((r for r in self.rows if r.method == REFERENCE and r.ok), None)

    def best(self) -> Row | None:
        tuned = [r for r in self.rows if r.ok and r.method != ZERO_SHOT and r.quality(self.primary)]
        sign = 1 if self.greater_is_better else -1
        return max(tuned, key=lambda r: sign * r.quality(self.primary)[0], default=None)


def load_results(dirs: list[str | Path]) -> list[dict[str, Any]]:
    """Results of several comparison folders; a (recipe, method, seed) seen twice keeps the later folder's."""
    merged: dict[tuple, dict[str, Any]] = {}
    for folder in dirs:
        for r in read_dir(Path(folder)):
            merged[(r.get("recipe"), r.get("task"), r.get("model"), r["method"], r["seed"])] = r
    return list(merged.values())


def sections(results: list[dict[str, Any]]) -> list[Section]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r.get("recipe") or "?", r.get("task") or "?", r.get("model") or "?"), []).append(r)
    out = []
    for (recipe, task, model), members in sorted(groups.items()):
        primary = next((r["primary_metric"] for r in members if r.get("primary_metric")), None)
        greater = next((r["greater_is_better"] for r in members if r.get("primary_metric")), True)
        by_method: dict[str, list] = {}
        for r in sorted(members, key=lambda r: (r["method"], r["seed"])):
            by_method.setdefault(r["method"], []).append(r)
        rows = [Row(m, rs) for m, rs in by_method.items()]
        sign = -1 if greater else 1

        def order(row: Row):
            q = row.quality(primary) if primary else None
            return (row.method != ZERO_SHOT, not row.ok, sign * q[0] if q else 0.0, row.method)

        out.append(Section(recipe, task, model, primary or "?", greater, sorted(rows, key=order)))
    return out


# ---- formatting -------------------------------------------------------------------------------

def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if x is None else fmt.format(x)


def _quality(q: tuple[float, float] | None) -> str:
    return "–" if q is None else f"{q[0]:.4f} ± {q[1]:.4f}"


def _size(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "–"


def table(section: Section) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table."""
    ref = section.reference()
    header = ["method", "runs ok", f"{section.primary} (mean ± std)", "trainable", "checkpoint",
              "train time (median)", "wall time", "tokens/s", "samples/s", "peak memory"]
    if ref:
        header += ["memory vs full", "time vs full", "quality vs full"]
    header.append("notes")
    body = []
    for row in section.rows:
        q = row.quality(section.primary)
        share = row.median("trainable_share")
        cells = [row.method, f"{len(row.ok)}/{len(row.results)}", _quality(q),
                 "–" if share is None else f"{100 * share:.2f}% of {_num(row.median('total_params'), '{:,.0f}')}",
                 _size(row.median("checkpoint_bytes")), _num(row.median("train_seconds"), "{:.1f} s"),
                 _num(row.median("wall_seconds"), "{:.1f} s"), _num(row.median("train_tokens_per_second"), "{:,.0f}"),
                 _num(row.median("train_samples_per_second"), "{:.1f}"), _num(row.memory(), "{:,.0f} MiB")]
        if ref:
            mem, ref_mem = row.memory(), ref.memory()
            t, ref_t = row.median("train_seconds"), ref.median("train_seconds")
            rq = ref.quality(section.primary)
            cells += [f"{mem / ref_mem:.2f}×" if mem and ref_mem else "–",
                      f"{t / ref_t:.2f}×" if t and ref_t and row.method != ZERO_SHOT else "–",
                      f"{q[0] - rq[0]:+.4f}" if q and rq else "–"]
        cells.append(row.problems())
        body.append(cells)
    return header, body


def quality_table(section: Section) -> tuple[list[str], list[list[str]]]:
    metrics = section.metrics
    return ["method", *metrics], [[row.method, *(_quality(row.quality(m)) for m in metrics)]
                                  for row in section.rows if row.ok]


def per_label(section: Section) -> tuple[str, str, list[str], list[list[str]]] | None:
    """(method, report name, header, rows) of the best method's per-label report, averaged over seeds."""
    best = section.best()
    if best is None:
        return None
    names = [k for k, v in (best.ok[0].get("details") or {}).items() if isinstance(v, dict)]
    if not names:
        return None
    name = names[0]
    tables = [r["details"][name] for r in best.ok if isinstance((r.get("details") or {}).get(name), dict)]
    labels = list(tables[0])
    columns = list(dict.fromkeys(k for t in tables for v in t.values() if isinstance(v, dict) for k in v))
    rows = []
    for label in labels:
        cells = [label]
        for col in columns:
            vals = [t[label][col] for t in tables if isinstance(t.get(label), dict) and col in t[label]]
            mean = statistics.fmean(vals) if vals else None
            cells.append("–" if mean is None else (f"{mean:.0f}" if all(isinstance(v, int) for v in vals)
                                                   else f"{mean:.4f}"))
        rows.append(cells)
    return best.method, name, ["label", *columns], rows


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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]], cls: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>'


def _context(results: list[dict[str, Any]]) -> list[str]:
    devices = sorted({r["device"] for r in results if r.get("device")})
    commits = sorted({r["git_commit"][:10] for r in results if r.get("git_commit")})
    versions = next((r["versions"] for r in results if r.get("versions")), {}) or {}
    shown = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    return [f"Device: {'; '.join(devices) or 'unknown'}", f"Versions: {shown or 'unknown'}",
            f"adapterkit commit: {', '.join(commits) or 'unknown'}"]


HTML_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>adapterkit comparison</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child,td:last-child{text-align:left}
img{max-width:48%;margin-right:1%}
</style>
<script>
/* records each image's decoded size in data-decoded, so a headless browser can check the plots render */
window.addEventListener("load", function () {
  document.querySelectorAll("img").forEach(function (img) {
    img.dataset.decoded = img.complete && img.naturalWidth > 0 ? img.naturalWidth + "x" + img.naturalHeight : "failed";
  });
  document.body.dataset.loaded = "yes";
});
</script>
</head><body>
"""


def render(results: list[dict[str, Any]], out_dir: Path) -> tuple[str, str, dict[str, bytes]]:
    """(markdown, html, {png file name: bytes})."""
    import json

    results = sorted((json.loads(json.dumps(r, default=str)) for r in results),  # as a rebuild reads them
                     key=lambda r: (str(r.get("recipe")), r["method"], r["seed"]))
    md = ["# adapterkit comparison", ""]
    page = [HTML_HEAD, "<h1>adapterkit comparison</h1>"]
    pngs: dict[str, bytes] = {}
    for sec in sections(results):
        title = f"{sec.recipe} — {sec.task} on {sec.model}"
        ranking = "higher is better" if sec.greater_is_better else "lower is better"
        intro = (f"Ranked by {sec.primary} ({ranking}); quality is mean ± std over seeds, speed and memory "
                 f"are medians; time is the training loop's.")
        md += [f"## {title}", "", intro, "", _md_table(*table(sec)), "", "### All quality metrics", "",
               _md_table(*quality_table(sec)), ""]
        page += [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(intro)}</p>",
                 _html_table(*table(sec), "comparison"), "<h3>All quality metrics</h3>",
                 _html_table(*quality_table(sec), "quality")]
        images = []
        for axis in ("memory", "time"):
            png = pareto_png(sec, axis)
            if png:
                name = f"pareto_{axis}_{sec.recipe}.png".replace("/", "_")
                pngs[name] = png
                images.append(name)
        if images:
            md += ["### Pareto plots", "", *(f"![{n[:-4].replace('_', ' ')}]({n})" for n in images), ""]
            page += ["<h3>Pareto plots</h3>", "<p>"]
            page += [f'<img alt="{html.escape(n)}" src="data:image/png;base64,{base64.b64encode(pngs[n]).decode()}">'
                     for n in images]
            page.append("</p>")
        labels = per_label(sec)
        if labels:
            method, name, header, rows = labels
            heading = f"{name} of the best method, {method} (mean over seeds)"
            md += [f"### {heading}", "", _md_table(header, rows), ""]
            page += [f"<h3>{html.escape(heading)}</h3>", _html_table(header, rows, "per-label")]
    context = _context(results)
    md += ["---", "", *(f"{c}  " for c in context), ""]
    page += ["<hr>", *(f"<p>{html.escape(c)}</p>" for c in context), "</body></html>\n"]
    return "\n".join(md), "\n".join(page), pngs


def write_report(results: list[dict[str, Any]], out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, page, pngs = render(results, out_dir)
    for name, data in pngs.items():
        (out_dir / name).write_bytes(data)
    (out_dir / "report.md").write_text(md, encoding="utf-8")
    (out_dir / "report.html").write_text(page, encoding="utf-8")
    return out_dir / "report.md"


def rebuild(dirs: list[str | Path], output: str | Path | None = None) -> Path:
    """``adapterkit report``: re-render from the result files of one or more comparison folders."""
    return write_report(load_results(dirs), Path(output) if output else Path(dirs[0]))
