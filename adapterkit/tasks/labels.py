"""Class labels as files hold them, read as one spelling per class.

A label is read as text with its surrounding whitespace dropped (a CSV's ``pos, 1`` or ``0 `` is class ``1``
or ``0``, not a class of its own), and a whole-number float (``1.0``, as pandas writes an integer column that
has gaps) as the integer. Labels seen in train that differ only in case (``Pos`` beside ``pos``) are refused
unless ``task.labels`` lists them: most likely one class spelt two ways, which would split its rows between
two classes. Classes are numbered in their natural order: numerically where every label is a number (star ratings
``1`` to ``10``: ``2`` before ``10``, so class id 1 is ``2``), otherwise as text.
"""

from __future__ import annotations

import math
import re

from ..errors import UserError


def label_of(value) -> str | None:
    """The class a stored label names, as text; None for a missing one (None, NaN, empty or blank text)."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else str(value)
    text = str(value).strip()
    return text or None


NUMBER = re.compile(r"-?\d+(\.\d+)?")


def ordered(labels) -> list[str]:
    """The labels in their natural order: as numbers where every one is a number, else as text."""
    labels = set(labels)
    if labels and all(NUMBER.fullmatch(label) for label in labels):
        return sorted(labels, key=lambda label: (float(label), label))
    return sorted(labels)


def refuse_case_variants(rows: list[dict], column: str, where: str) -> None:
    """One line when two train labels differ only in case (``task.labels`` naming both accepts them)."""
    first: dict[str, tuple[str, str | None]] = {}
    for row in rows:
        label = label_of(row.get(column))
        if label is None:
            continue
        seen = first.setdefault(label.casefold(), (label, row.get("_where")))
        if seen[0] != label:
            raise UserError(f"labels {seen[0]!r} ({seen[1] or 'an earlier row'}) and {label!r} differ only in case: "
                            "give the class one spelling, or list both in task.labels if they are two classes",
                            where=row.get("_where") or where)


def renumbered(dataset, labels: list[str], trained: list[str], column: str = "label"):
    """``dataset``'s class ids (``column``, indices into ``labels``) as indices into ``trained``."""
    if dataset is None or column not in dataset.column_names:
        return dataset
    position = [trained.index(name) for name in labels]
    return dataset.map(lambda row: {column: position[row[column]]})


def as_trained(data, trained: list[str] | None, what: str, where: str):
    """``data`` (a ``TaskData``) with its classes numbered as a trained model numbered them (``trained``: its
    ``labels.json``; None: no such file). The same classes in another order are renumbered (runs before numeric labels
    were ordered as numbers numbered them as text); other classes are refused: the model would read them as others."""
    from .base import TaskData

    if trained is None or data.labels is None or trained == data.labels:
        return data
    if set(trained) == set(data.labels) and "label" in data.eval.column_names:
        return TaskData(*(renumbered(split, data.labels, trained) for split in (data.train, data.eval)), trained,
                        data.skipped_rows)
    raise UserError(f"{what} was trained with the labels {', '.join(trained)}, but its data.train now gives "
                    f"{', '.join(data.labels)}: its classes would be read as others; use the data it was trained on (a "
                    "run trained on a datasets folder before its ClassLabel columns were read as names: retrain it)",
                    where=where)
