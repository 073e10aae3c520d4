"""Result JSONs grouped for the report: one ``Section`` per compared recipe, one ``Row`` per method."""

from __future__ import annotations

import json
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
    setup: str = ""  # load_results' setup line ("" for one comparison's own results)

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


SETUP = "setup"  # added by load_results, not in the result files: the comparison setup a result belongs to


def load_results(dirs: list[str | Path]) -> list[dict[str, Any]]:
    """Results of several comparison folders. Folders of different setups (other devices or precision, other
    ``--set`` items) stay apart: each is its own section, ranked on its own (a CPU and a GPU comparison of one
    recipe are not one table). A (recipe, method, seed) seen twice within one setup keeps the later folder's."""
    merged: dict[tuple, dict[str, Any]] = {}
    for folder in dirs:
        found = read_dir(Path(folder))
        setup = folder_setup(Path(folder), found)
        for r in found:
            r[SETUP] = setup
            merged[(setup, r.get("recipe"), r.get("task"), r.get("model"), r["method"], r["seed"])] = r
    return list(merged.values())


def folder_setup(folder: Path, found: list[dict[str, Any]]) -> str:
    """One line naming a comparison folder's setup: the devices its runs ran on and its ``--set`` items
    (``comparison.json``; a folder without one, e.g. a tune's, has none to name)."""
    devices = sorted({r["device"] for r in found if r.get("device")})
    try:
        sets = json.loads((folder / "comparison.json").read_text(encoding="utf-8")).get("sets") or []
    except (OSError, ValueError, AttributeError):
        sets = []
    return "; ".join(devices or ["device unknown"]) + "".join(f"; --set {s}" for s in sets)


def sections(results: list[dict[str, Any]]) -> list[Section]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        key = (r.get("recipe") or "?", r.get("task") or "?", r.get("model") or "?", r.get(SETUP) or "")
        groups.setdefault(key, []).append(r)
    out = []
    for (recipe, task, model, setup), members in sorted(groups.items()):
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

        out.append(Section(recipe, task, model, primary or "?", greater, sorted(rows, key=order), setup))
    return out


# ---- formatting -------------------------------------------------------------------------------
