"""``data.streaming = true``: the train split read as it trains, never whole, for data bigger than memory.

The train source (a file, a ``datasets`` folder, a hub id, ``:<split>``) becomes a ``datasets.IterableDataset``
of rows with their ``_where``; the task maps it (format, tokens) and shuffles it with a buffer of
``data.shuffle_buffer`` rows seeded by ``train.seed``. It has no length, so the run needs ``train.max_steps``.
Eval stays in memory: a named split or file (``data.limit_eval`` rows at most), or, when ``data.eval`` is a
fraction, the first ``data.limit_eval`` (default ``STREAM_EVAL_ROWS``) rows of the stream, which train then skips.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .columns import renamed
from .files import csv_rows, jsonl_row
from .sources import load_rows, locate, with_split

STREAM_EVAL_ROWS = 200
BUILDERS = {".json": "json", ".parquet": "parquet"}  # JSON Lines and CSV/TSV: read here, line by line


def open_stream(spec: str, *, recipe_source: str, key: str, split: str, on_error: str = "fail"):
    """An ``IterableDataset`` of one split's rows, each with ``_where`` (source#row, or file:line for JSON Lines)."""
    import datasets

    where = f"{recipe_source}: {key}"
    source = locate(spec, recipe_source=recipe_source, key=key)
    if isinstance(source, Path) and source.is_file() and source.suffix.lower() == ".jsonl":
        return jsonl_stream(source, on_error)
    if isinstance(source, Path) and source.is_file() and source.suffix.lower() in (".csv", ".tsv"):
        return csv_stream(source, on_error)
    if isinstance(source, Path) and source.is_file():
        builder = BUILDERS.get(source.suffix.lower())
        if builder is None:
            raise UserError(f"data.streaming reads {', '.join(('.jsonl', '.csv', '.tsv', *BUILDERS))} files, not "
                            f"{source.suffix!r}", where=where)
        options = {"delimiter": "\t"} if source.suffix.lower() == ".tsv" else {}
        stream = datasets.load_dataset(builder, data_files=str(source), split="train", streaming=True, **options)
        name = str(source)
    elif isinstance(source, str):
        from .builtin import BUILTIN_DATASETS

        rows = BUILTIN_DATASETS[source].rows()
        return datasets.Dataset.from_list(rows).to_iterable_dataset()
    else:
        from .hub import open_split

        name, explicit = with_split(spec, recipe_source)
        stream = open_split(source or name, explicit, split, where, streaming=True)
        name = f"{source or name}[{explicit or split}]"
    return stream.map(lambda row, i: {**row, "_where": f"{name}#row{i + 1}"}, with_indices=True)


def jsonl_stream(path: Path, on_error: str):
    """A JSON Lines file read line by line as it trains, each row with its file:line; a bad line fails with it (or,
    with ``on_error = "skip"``, comes as the bad row the task drops), as when the file is read whole
    (``datasets``' JSON reader stopped at a bad line with a pyarrow traceback and a 0-based row number)."""
    import datasets

    def rows(path: str, on_error: str):
        with open(path, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
                except UnicodeDecodeError as err:
                    raise not_utf8(raw[err.start], f"{path}:{n}") from None
                if line.strip():
                    yield jsonl_row(line.rstrip("\r\n"), f"{path}:{n}", on_error)

    return datasets.IterableDataset.from_generator(rows, gen_kwargs={"path": str(path), "on_error": on_error})


def not_utf8(byte: int, where: str) -> UserError:
    """The one-line error for a streamed file's undecodable byte."""
    return UserError(f"not UTF-8 text: byte 0x{byte:02x} cannot be decoded; convert the file, e.g. iconv -f latin1 -t "
                     "utf-8", where=where)


def csv_stream(path: Path, on_error: str):
    """A CSV/TSV file read record by record as it trains, through the whole-file reader's ``csv_rows`` (strings, a
    record's first line, a bad record named or skipped), where ``datasets``' CSV reader stopped at a bad record with
    pandas' traceback and read the columns' types from the first rows."""
    import datasets

    def rows(path: str, on_error: str):
        with open(path, encoding="utf-8-sig", newline="") as fh:
            try:
                yield from csv_rows(fh, Path(path), on_error)
            except UnicodeDecodeError as err:
                raise not_utf8(err.object[err.start], path) from None

    return datasets.IterableDataset.from_generator(rows, gen_kwargs={"path": str(path), "on_error": on_error})


def stream_train_eval(data, recipe_source: str):
    """(train ``IterableDataset``, eval rows) for a DataSection with ``streaming = true``."""
    where = f"{recipe_source}: data.train"
    train = open_stream(data.train, recipe_source=recipe_source, key="data.train", split="train", on_error=data.on_error)
    if data.columns:
        columns = dict(data.columns)
        train = train.map(lambda row: {**row, **{ours: row[theirs] for ours, theirs in columns.items() if theirs in row}})
    n_eval = 0
    if isinstance(data.eval, (int, float)) and not isinstance(data.eval, bool):
        n_eval = data.limit_eval or STREAM_EVAL_ROWS
        evaluation = list(train.take(n_eval))
        train = train.skip(n_eval)
    else:
        evaluation = load_rows(data.eval, recipe_source=recipe_source, key="data.eval", split="validation",
                               on_error=data.on_error)
        evaluation = renamed(evaluation, data.columns, f"{recipe_source}: data.eval")[:data.limit_eval]
    if not evaluation:
        raise UserError("no evaluation examples", where=f"{recipe_source}: data.eval")
    if next(iter(train), None) is None:
        raise UserError("no training examples" + (" after the evaluation rows" if n_eval else ""), where=where)
    return train, evaluation


def shuffled(stream, seed: int, buffer_size: int):
    """The stream in shuffled order. A stream that fits in the buffer comes in the order the in-memory path's
    sampler draws at the same seed (``torch.randperm`` seeded by ``train.seed``, as accelerate's seedable
    sampler does), so the two paths give the same batches; a longer one is shuffled through a buffer of
    ``buffer_size`` rows (each row read replaces a random one in the buffer, which is yielded)."""
    import random

    import datasets
    import torch

    def rows():
        buffer, source = [], iter(stream)
        for row in source:
            buffer.append(row)
            if len(buffer) == buffer_size:
                break
        else:
            order = torch.randperm(len(buffer), generator=torch.Generator().manual_seed(seed)).tolist()
            yield from (buffer[i] for i in order)
            return
        rng = random.Random(seed)
        for row in source:
            k = rng.randrange(buffer_size)
            yield buffer[k]
            buffer[k] = row
        rng.shuffle(buffer)
        yield from buffer

    return datasets.IterableDataset.from_generator(rows)
