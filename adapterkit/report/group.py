"""Result JSONs grouped for the report: one ``Section`` per compared recipe, one ``Row`` per method."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..results import ZERO_SHOT, read_dir

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

        def order(row: Row, primary=primary, sign=sign):
            q = row.quality(primary) if primary else None
            return (row.method != ZERO_SHOT, not row.ok, sign * q[0] if q else 0.0, row.method)

        out.append(Section(recipe, task, model, primary or "?", greater, sorted(rows, key=order)))
    return out


# ---- formatting -------------------------------------------------------------------------------
