"""The report's tables (comparison, all quality metrics, per-label), as rows of strings, markdown or HTML."""

from __future__ import annotations

import html
import statistics

from ..results import ZERO_SHOT
from .group import Section


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


