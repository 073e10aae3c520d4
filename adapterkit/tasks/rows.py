"""Row checks shared by tasks: a problem is reported with the row's file:line, or the row is skipped.

``data.on_error = "skip"`` drops bad rows, but never more than ``MAX_SKIPPED_SHARE`` of a split, never a
whole split, and never every train row of a class: that much bad data means a wrong option or file, and
training on what is left would finish with nonsense metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from .. import distributed
from ..data.files import bad_row
from ..errors import UserError

log = logging.getLogger("adapterkit")

MAX_SKIPPED_SHARE = 0.5  # the most of a split data.on_error = "skip" may drop (README: When things go wrong)
CHARS_PER_TOKEN = 32  # a generous bound: text past task.max_length * 32 characters can never reach the model


def checked_rows(rows: list[dict], check: Callable[[dict], str | None], on_error: str, split: str,
                 classes: Callable[[dict], Iterable[str]] | None = None) -> tuple[list[dict], int]:
    """Rows that pass ``check`` (which returns a problem or None). ``on_error='fail'`` raises on the first.
    Rows a reader could not parse carry their problem already (``_problem``, see data/files.py).
    ``classes`` names a row's classes (labels, entity types): skipping every row of one is refused."""
    kept, dropped = [], []
    for row in rows:
        problem = row.get("_problem") or check(row)
        if problem is None:
            kept.append(row)
        else:
            bad_row(problem, row.get("_where"), on_error)  # raises unless on_error = "skip"
            dropped.append((row, problem))
    if dropped:
        log.warning("skipped %d malformed %s rows (data.on_error = 'skip')", len(dropped), split)
        refuse_heavy_skipping(len(dropped), len(rows), dropped[0][0].get("_where"), dropped[0][1], split)
        if classes is not None:
            refuse_lost_classes(kept, dropped, classes, split)
    return kept, len(dropped)


def refuse_heavy_skipping(skipped: int, total: int, where: str | None, problem: str, split: str) -> None:
    """Raise when skipping leaves a split empty or drops more than ``MAX_SKIPPED_SHARE`` of it."""
    if skipped == total or skipped > MAX_SKIPPED_SHARE * total:
        raise UserError(f"{skipped} of {total} {split} rows are bad, more than the {MAX_SKIPPED_SHARE:.0%} that "
                        f"data.on_error = \"skip\" may drop; the first: {problem}", where=where)


def refuse_lost_classes(kept: list[dict], dropped: list[tuple[dict, str]], classes, split: str) -> None:
    """Raise when every row of a class was skipped (it would vanish from the label set without a word)."""
    present = {c for row in kept for c in classes(row)}
    for row, problem in dropped:
        lost = [c for c in classes(row) if c not in present]
        if lost:
            count = sum(lost[0] in classes(r) for r, _ in dropped)
            raise UserError(f"all {count} {split} rows of class {lost[0]!r} are bad, and data.on_error = \"skip\" "
                            f"would drop the class; the first: {problem}", where=row.get("_where"))


def warn_shared(train: list[dict], evaluation: list[dict]) -> None:
    """Say how many eval rows are also train rows (``data.sources.shared_rows``), once across ranks."""
    from ..data.sources import shared_rows

    shared = shared_rows(train, evaluation)
    if shared and distributed.is_main():
        log.warning("%d of %d eval rows are also train rows (the first: %s); eval metrics on them measure memory, "
                    "not generalisation: remove them from the eval data", len(shared), len(evaluation),
                    shared[0].get("_where") or "?")


def clip_pieces(pieces: list[str], max_length: int) -> list[str]:
    """The leading pieces (texts, words, message contents) within ``max_length * CHARS_PER_TOKEN``
    characters, the last one cut: a giant row is cut cheaply before the tokenizer sees it."""
    left, kept = max_length * CHARS_PER_TOKEN, []
    for piece in pieces:
        if left <= 0:
            break
        kept.append(piece[:left])
        left -= len(kept[-1])
    return kept


def non_empty_string(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def warn_truncated(dataset, max_length: int, column: str = "input_ids", option: str = "task.max_length",
                   what: str = "examples"):
    """Texts longer than ``task.max_length`` tokens (``option``) are cut there (not skipped); say how many reach the
    limit (once: every rank of a multi-process run tokenizes the same rows)."""
    at_limit = sum(len(ids) >= max_length for ids in dataset[column])
    if at_limit and distributed.is_main():
        log.warning("%d of %d %s reach %s = %d tokens; longer ones are truncated to it",
                    at_limit, len(dataset), what, option, max_length)
    return dataset


def by_length(dataset):
    """Rows ordered by token count, for evaluation: each padded batch then holds rows of similar length, so
    little compute goes to padding. Metrics are computed over whole predictions, so the order is free."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    return dataset.select(sorted(range(len(lengths)), key=lengths.__getitem__))



def scalars(report: dict) -> dict:
    """A metric report's numbers only (what a Trainer logs during training); nested tables are left out."""
    return {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
