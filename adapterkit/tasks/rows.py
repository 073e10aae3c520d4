"""Row checks shared by tasks: a problem is reported with the row's file:line, or the row is skipped."""

from __future__ import annotations

import logging
from typing import Callable

from ..data.files import bad_row

log = logging.getLogger("adapterkit")


def checked_rows(rows: list[dict], check: Callable[[dict], str | None], on_error: str, split: str) -> tuple[list[dict], int]:
    """Rows that pass ``check`` (which returns a problem or None). ``on_error='fail'`` raises on the first.
    Rows a reader could not parse carry their problem already (``_problem``, see data/files.py)."""
    kept, skipped = [], 0
    for row in rows:
        problem = row.get("_problem") or check(row)
        if problem is None:
            kept.append(row)
        else:
            bad_row(problem, row.get("_where"), on_error)  # raises unless on_error = "skip"
            skipped += 1
    if skipped:
        log.warning("skipped %d malformed %s rows (data.on_error = 'skip')", skipped, split)
    return kept, skipped


def non_empty_string(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def warn_truncated(dataset, max_length: int):
    """Texts longer than ``task.max_length`` tokens are cut there (not skipped); say how many reach the limit."""
    at_limit = sum(len(ids) >= max_length for ids in dataset["input_ids"])
    if at_limit:
        log.warning("%d of %d examples reach task.max_length = %d tokens; longer ones are truncated to it",
                    at_limit, len(dataset), max_length)
    return dataset


def by_length(dataset):
    """Rows ordered by token count, for evaluation: each padded batch then holds rows of similar length, so
    little compute goes to padding. Metrics are computed over whole predictions, so the order is free."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    return dataset.select(sorted(range(len(lengths)), key=lengths.__getitem__))
