"""Turn ``data.train`` / ``data.eval`` into rows: a file, ``builtin:<name>``, a ``datasets`` folder written by
``save_to_disk`` or a hub dataset id (both through ``datasets`` itself, ``data/hub.py``), ``:<split>`` picking a split.

``data.eval`` may be a fraction: that share of train is held out with a split seeded by
``data.split_seed``, so every method and training seed of a comparison sees the same split.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from ..assets import BUILTIN_PREFIX
from ..errors import UserError
from .columns import renamed
from .files import FILE_SUFFIXES, read_file

log = logging.getLogger("adapterkit")


def resolve_file(spec: str, recipe_source: str) -> Path | None:
    """A file or ``datasets`` folder relative to the working directory, else to the recipe's folder; None if
    ``spec`` does not look like a path (then it is a hub id). A path that exists nowhere is returned as is,
    for ``locate`` to report missing."""
    candidates = [Path(spec).expanduser()]
    if recipe_source and not Path(spec).is_absolute():
        candidates.append(Path(recipe_source).parent / spec)
    for c in candidates:
        if c.is_file() or c.is_dir():
            return c
    looks_like_path = spec.startswith((".", "/", "~")) or Path(spec).suffix.lower() in FILE_SUFFIXES
    if looks_like_path:
        return candidates[-1]  # report it missing rather than asking the hub
    return None


def with_split(spec: str, recipe_source: str) -> tuple[str, str | None]:
    """``org/name:train`` or ``./folder:test`` -> (name, split); a spec that exists as a path keeps its colons."""
    base, colon, split = spec.rpartition(":")
    if not colon or not base or not split or "/" in split or "\\" in split:
        return spec, None
    found = resolve_file(spec, recipe_source)
    if found is not None and found.exists():
        return spec, None
    return base, split


def locate(spec: str, *, recipe_source: str, key: str) -> Path | str | None:
    """Where a split's rows come from: a file's or ``datasets`` folder's path, a built-in dataset's name, or
    None for a hub id. Raises for a missing file or an unknown built-in, before anything is written."""
    where = f"{recipe_source}: {key}"
    if spec.startswith(BUILTIN_PREFIX):
        from .builtin import BUILTIN_DATASETS

        name = spec[len(BUILTIN_PREFIX):]
        if name not in BUILTIN_DATASETS:
            known = ", ".join(BUILTIN_PREFIX + k for k in BUILTIN_DATASETS)
            raise UserError(f"unknown built-in dataset {spec!r} (known: {known})", where=where)
        return name
    path = resolve_file(with_split(spec, recipe_source)[0], recipe_source)
    if path is not None and not path.exists():
        raise UserError(f"data file or folder {spec!r} not found", where=where)
    return path


def check_sources(data, recipe_source: str) -> None:
    """Every data file the DataSection names exists, and every built-in name is known."""
    for key, spec in (("data.train", data.train), ("data.eval", data.eval)):
        if isinstance(spec, str):
            locate(spec, recipe_source=recipe_source, key=key)


def load_rows(spec: str, *, recipe_source: str, key: str, split: str, on_error: str = "fail") -> list[dict]:
    """Rows for one split. ``key`` names the recipe field for messages (``data.train``)."""
    source = locate(spec, recipe_source=recipe_source, key=key)
    where = f"{recipe_source}: {key}"
    if isinstance(source, Path) and source.is_file():
        return read_file(source, on_error)
    if isinstance(source, str):
        from .builtin import BUILTIN_DATASETS

        return BUILTIN_DATASETS[source].rows()
    from .hub import dataset_rows, open_split

    name, explicit = with_split(spec, recipe_source)
    return dataset_rows(open_split(source or name, explicit, split, where), source or name, explicit or split)


def split_rows(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, eval): ``fraction`` of the rows held out, drawn with ``seed``. Identical rows (``row_key``) are one
    draw: a held-out row has no copy left in train, and eval holds it once (a corpus repeating a conversation a
    hundred times, as chatterbot's tech_support does, would otherwise score memorised answers). Without repeated
    rows the split is the plain seeded shuffle."""
    if not 0 < fraction < 1:
        raise UserError(f"data.eval as a fraction must be between 0 and 1, got {fraction}")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row_key(row), []).append(i)
    members = list(groups.values())
    order = list(range(len(members)))
    random.Random(seed).shuffle(order)
    n_eval = min(max(1, round(len(rows) * fraction)), max(len(members) - 1, 1))
    if len(members) < len(rows):
        log.info("data.eval = %g: %d rows repeat others; each distinct row is held out whole or not at all",
                 fraction, len(rows) - len(members))
    return [rows[i] for g in order[n_eval:] for i in members[g]], [rows[members[g][0]] for g in order[:n_eval]]


def row_key(row: dict) -> str:
    """A row's content, every column but the reader's own ``_`` keys (``_where``): equal for identical rows."""
    import json

    return json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, sort_keys=True, default=str)


def shared_rows(train: list[dict], evaluation: list[dict]) -> list[dict]:
    """The eval rows identical to a train row (``row_key``): an eval file cut from the train file scores memorised
    answers (a fraction split never shares rows: ``split_rows``)."""
    seen = {row_key(row) for row in train}
    return [row for row in evaluation if row_key(row) in seen]


def load_train_eval(data, recipe_source: str, read=None) -> tuple[list[dict], list[dict]]:
    """Train and eval rows for a DataSection, limited to ``limit_train`` / ``limit_eval`` (seeded sample).
    ``read``: a task's own row reader with ``load_rows``' signature (``lm`` reads ``.txt`` as plain text)."""
    read = read or load_rows
    if data.streaming:  # tasks that stream call data/streaming.py instead
        raise UserError("data.streaming = true is read by task 'chat'; this task reads its data whole (drop the "
                        "option, or use data.limit_train for a sample)", where=f"{recipe_source}: data.streaming")
    train = read(data.train, recipe_source=recipe_source, key="data.train", split="train", on_error=data.on_error)
    train = renamed(train, data.columns, f"{recipe_source}: data.train")
    if isinstance(data.eval, (int, float)) and not isinstance(data.eval, bool):
        train, evaluation = split_rows(train, float(data.eval), data.split_seed)
    else:
        evaluation = read(data.eval, recipe_source=recipe_source, key="data.eval", split="validation",
                          on_error=data.on_error)
        evaluation = renamed(evaluation, data.columns, f"{recipe_source}: data.eval")
    if data.limit_train and len(train) > data.limit_train:
        train = random.Random(data.split_seed).sample(train, data.limit_train)
    if data.limit_eval and len(evaluation) > data.limit_eval:
        evaluation = random.Random(data.split_seed + 1).sample(evaluation, data.limit_eval)
    if not train:
        raise UserError("no training examples", where=f"{recipe_source}: data.train")
    if not evaluation:
        raise UserError("no evaluation examples", where=f"{recipe_source}: data.eval")
    return train, evaluation
