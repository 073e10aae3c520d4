"""Hub datasets and local ``datasets`` folders, opened through ``datasets`` itself.

A folder written by ``Dataset.save_to_disk`` (one split) or ``DatasetDict.save_to_disk`` (several) is read
with ``load_from_disk``, given by absolute, ``./`` or relative path (to the working directory, else to the
recipe's folder); any other folder (of data files) and a hub id go to ``load_dataset``. ``name:split`` picks a
split by name; without one, train reads ``train`` and eval the first of ``validation``, ``valid``, ``eval``,
``test`` there is. ``streaming=True`` gives an ``IterableDataset`` that reads as it goes.

Columns stored as ``ClassLabel`` (or lists of them, as NER tags) are read as their names, never as the integers
``datasets`` stores: two folders whose ``ClassLabel`` lists the same names in another order would otherwise
mean different classes by the same integer (a train folder's 0 = "neg" beside an eval folder's 0 = "pos").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UserError

EVAL_SPLITS = ("validation", "valid", "eval", "dev", "test")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _pick(splits: list[str], explicit: str | None, default: str, name: str, where: str) -> str:
    if explicit:
        if explicit not in splits:
            raise UserError(f"{name} has no split {explicit!r} (splits: {', '.join(splits)})", where=where)
        return explicit
    wanted = (default,) if default == "train" else (default, *EVAL_SPLITS)
    found = next((s for s in wanted if s in splits), None)
    if found is None:
        raise UserError(f"{name} has no {default!r} split (splits: {', '.join(splits)}); name one as "
                        f"'{name}:<split>'", where=where)
    return found


def is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def open_split(source: Path | str, explicit: str | None, default: str, where: str, streaming: bool = False):
    """A ``datasets.Dataset`` (or ``IterableDataset`` when streaming) for one split of a folder or hub id."""
    import datasets

    if isinstance(source, Path) and is_saved_dataset(source):
        try:
            saved = datasets.load_from_disk(str(source))
        except Exception as err:  # datasets raises several types for a damaged folder
            raise UserError(f"cannot read the datasets folder: {_first_line(err)}", where=f"{where} ({source})") \
                from None
        if isinstance(saved, datasets.DatasetDict):
            saved = saved[_pick(list(saved), explicit, default, str(source), where)]
        return saved.to_iterable_dataset() if streaming else saved
    name = str(source)
    try:
        if explicit is None and default != "train":
            try:
                names = datasets.get_dataset_split_names(name)
            except Exception:  # noqa: BLE001 - offline, a cached dataset may still load by its usual split name
                names = [default]
            explicit = _pick(names, None, default, name, where)
        return datasets.load_dataset(name, split=explicit or default, streaming=streaming)
    except UserError:
        raise
    except Exception as err:  # the hub client raises many types; the user needs the reason in one line
        raise UserError(f"cannot load dataset {name!r}: {_first_line(err)}", where=where) from None


def label_names(features) -> dict[str, Callable]:
    """For each column stored as a ``ClassLabel`` or a list of them, a function from the stored value to names;
    -1 (``datasets``' "no label", as in unlabelled test splits) reads as None, a missing label."""
    import datasets

    def name(label: datasets.ClassLabel):
        return lambda value: label.int2str(value) if isinstance(value, int) and 0 <= value < label.num_classes else None

    decoders: dict[str, Callable] = {}
    for column, feature in (features or {}).items():
        inner = getattr(feature, "feature", None)  # List / LargeList / Sequence of one feature
        if isinstance(feature, datasets.ClassLabel):
            decoders[column] = name(feature)
        elif isinstance(inner, datasets.ClassLabel):
            one = name(inner)
            decoders[column] = lambda values, one=one: None if values is None else [one(v) for v in values]
    return decoders


def dataset_rows(dataset, name: str | Path, split: str) -> list[dict]:
    """The rows of an in-memory split, each with its ``name[split]#index`` for messages; ``ClassLabel`` columns
    as their names (``label_names``)."""
    decoders = label_names(dataset.features)
    return [{**rec, **{c: f(rec[c]) for c, f in decoders.items() if c in rec}, "_where": f"{name}[{split}]#{i}"}
            for i, rec in enumerate(dataset)]
