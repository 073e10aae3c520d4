"""The comparison report: result JSONs (``adapterkit.results``) -> ``report.md`` + ``report.html`` + plots.

One section per compared recipe (recipe, task, model), one row per method: quality as mean ± sample
standard deviation over the seeds that finished, speed and memory as the median over those seeds,
and, when ``full`` is among the rows, "memory vs full" and "time vs full" (ratios of medians) and
"quality vs full" (difference of the primary metric's means). Peak memory is the CUDA max-allocated
figure on GPU, the process RSS high-water mark on CPU; "time" is the training loop's time.
Skipped and failed methods are listed with their reason. Two Pareto plots (quality vs peak memory,
quality vs training time) and one of the methods' training-loss curves overlaid are written as PNGs next to the
report and embedded (base64) in the HTML, which therefore needs no network and no other file. The best method's
per-label report follows.

The output depends only on the results, so ``adapterkit report DIR`` rebuilds it byte for byte.

Modules: ``group.py`` (results -> sections of rows), ``table.py`` (the tables, markdown and HTML),
``plot.py`` (the Pareto PNGs), ``render.py`` (the pages, written and rebuilt).
"""

from .group import Row, Section, load_results, sections
from .render import rebuild, render, write_report

__all__ = ["Row", "Section", "load_results", "rebuild", "render", "sections", "write_report"]
