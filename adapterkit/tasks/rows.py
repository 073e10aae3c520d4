"""Row checks shared by tasks: a problem is reported with the row's file:line, or the row is skipped."""

from __future__ import annotations

import logging
from typing import Callable

from ..errors import UserError

log = logging.getLogger("adapterkit")


def checked_rows(rows: list[dict], check: Callable[[dict], str | None], on_error: str, split: str) -> tuple[list[dict], int]:
    """Rows that pass ``check`` (which returns a problem or None). ``on_error='fail'`` raises on the first."""
    kept, skipped = [], 0
    for row in rows:
        problem = check(row)
        if problem is None:
            kept.append(row)
        elif on_error == "fail":
            raise UserError(f"{problem} (set data.on_error = \"skip\" to drop such rows)", where=row.get("_where"))
        else:
            skipped += 1
    if skipped:
        log.warning("skipped %d malformed %s rows (data.on_error = 'skip')", skipped, split)
    return kept, skipped


def non_empty_string(value) -> bool:
    return isinstance(value, str) and bool(value.strip())
