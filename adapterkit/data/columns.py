"""Column names: ``data.columns`` maps the standard names a task reads to a file's own, and a file whose
columns match nothing a task reads is refused in one line that names what it found and how to map it.

    data.columns = {text = "review", label = "sentiment"}     # an IMDb-style CSV for classification
"""

from __future__ import annotations

import re

from ..errors import UserError

SAMPLE = 200  # rows whose keys are read to tell a file's columns (a column missing from all of them is missing)


def source_of(rows: list[dict]) -> str:
    """The file or dataset the rows come from, from the first row's ``_where`` (``file:line``, ``name#row``)."""
    where = str(rows[0].get("_where") or "") if rows else ""
    return re.sub(r"(:\d+|#[^#]*)$", "", where)


def columns_of(rows: list[dict]) -> list[str]:
    """The columns of the first ``SAMPLE`` rows in first-seen order, without the reader's own ``_`` keys."""
    seen: dict[str, None] = {}
    for row in rows[:SAMPLE]:
        seen.update((k, None) for k in row if not k.startswith("_"))
    return list(seen)


def renamed(rows: list[dict], columns: dict[str, str], where: str) -> list[dict]:
    """Rows with each mapped column also under its standard name (``{standard: the file's}``)."""
    if not columns or not rows:
        return rows
    found = columns_of(rows)
    missing = [theirs for theirs in columns.values() if theirs not in found]
    if missing:
        raise UserError(f"data.columns names {', '.join(map(repr, missing))}, which the data does not have "
                        f"(columns found: {', '.join(found) or 'none'})", where=where)
    return [{**row, **{ours: row[theirs] for ours, theirs in columns.items() if theirs in row}} for row in rows]


def mapping_hint(needed: list[str], found: list[str]) -> str:
    """``data.columns = {text = "review", label = "sentiment"}``: the needed names paired, in order, with the
    found columns that are not already standard names (a guess the user checks; the order is the file's)."""
    spare = [c for c in found if c not in needed]
    pairs = [f'{ours} = "{spare[i] if i < len(spare) else "..."}"' for i, ours in enumerate(needed)]
    return "data.columns = {" + ", ".join(pairs) + "}"


def require_columns(rows: list[dict], needed: list[str], task: str, where: str, option_hint: str = "") -> None:
    """One line when no sampled row has every needed column: the columns found, those expected, the option."""
    found = columns_of(rows)
    if not rows or any(all(c in row for c in needed) for row in rows[:SAMPLE]):
        return
    missing = [c for c in needed if c not in found]
    if not missing:
        return  # each column appears in some row: row checks report the rows that lack one
    extra = f" (or {option_hint})" if option_hint else ""
    raise UserError(f"task {task!r} reads columns {' + '.join(needed)}, but {source_of(rows) or 'the data'} has "
                    f"{', '.join(found) or 'no columns'}; map yours with {mapping_hint(missing, found)}{extra}",
                    where=where)
