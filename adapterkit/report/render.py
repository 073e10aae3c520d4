"""The report's pages: ``report.md`` + ``report.html`` (plots embedded) + PNGs, written and rebuilt."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from .group import load_results, sections
from .plot import loss_curves_png, pareto_png
from .table import _html_table, _md_table, per_label, quality_table, table


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
    found = sections(results)
    recipes = [sec.recipe for sec in found]
    for number, sec in enumerate(found, 1):
        title = f"{sec.recipe} — {sec.task} on {sec.model}"
        if recipes.count(sec.recipe) > 1:  # one recipe compared in several setups: each its own section and plots
            title += f" ({sec.setup})"
            stem = f"{sec.recipe}_{number}"
        else:
            stem = sec.recipe
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
                name = f"pareto_{axis}_{stem}.png".replace("/", "_")
                pngs[name] = png
                images.append(name)
        png = loss_curves_png(sec)
        if png:
            name = f"loss_curves_{stem}.png".replace("/", "_")
            pngs[name] = png
            images.append(name)
        if images:
            md += ["### Pareto plots and loss curves", "", *(f"![{n[:-4].replace('_', ' ')}]({n})" for n in images), ""]
            page += ["<h3>Pareto plots and loss curves</h3>", "<p>"]
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
    """``adapterkit report``: re-render from the result files of one or more comparison folders, into the first
    (or ``output``: a new, empty or report folder, never one of the user's own files nor a comparison). Not into
    a comparison that a live ``adapterkit compare`` is writing: it writes its own report when it ends."""
    from ..rundir import check_free, take

    results = load_results(dirs)
    if output:
        return write_report(results, take(output, "report"))
    check_free(Path(dirs[0]), "compare")
    return write_report(results, Path(dirs[0]))
