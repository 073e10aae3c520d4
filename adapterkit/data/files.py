"""Read example files into rows, keeping each row's file:line for error messages.

Formats by suffix: ``.jsonl``/``.json`` (one object a line, or a JSON list), ``.csv``/``.tsv``,
``.parquet``, and ``.conll``/``.txt`` (token<TAB or space>tag a line, blank line between sentences).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import UserError

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".conll", ".txt", ".bio")


def read_jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"not valid JSON: {err.msg}", where=f"{path}:{err.lineno}") from None
        return [_row(item, f"{path}#{i + 1}") for i, item in enumerate(items)]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"not valid JSON ({err.msg})", where=f"{path}:{n}") from None
        rows.append(_row(item, f"{path}:{n}"))
    return rows


def _row(item, where: str) -> dict:
    if not isinstance(item, dict):
        raise UserError(f"expected a JSON object, got {type(item).__name__}", where=where)
    return {**item, "_where": where}


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
        return [{**rec, "_where": f"{path}:{reader.line_num}"} for rec in reader]


def read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return [{**rec, "_where": f"{path}#row{i + 1}"} for i, rec in enumerate(table.to_pylist())]


def read_conll(path: Path) -> list[dict]:
    """CoNLL-style: the first column is the token, the last the tag; ``-DOCSTART-`` lines are ignored."""
    rows, tokens, tags, start = [], [], [], 1
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if tokens:
                rows.append({"tokens": tokens, "tags": tags, "_where": f"{path}:{start}"})
            tokens, tags, start = [], [], n + 1
            continue
        if len(parts) < 2:
            raise UserError(f"expected 'token<TAB>tag', got {line.strip()!r}", where=f"{path}:{n}")
        tokens.append(parts[0])
        tags.append(parts[-1])
    if tokens:
        rows.append({"tokens": tokens, "tags": tags, "_where": f"{path}:{start}"})
    return rows


def read_file(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    if suffix in (".csv", ".tsv"):
        return read_csv(path)
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix in (".conll", ".txt", ".bio"):
        return read_conll(path)
    raise UserError(f"unsupported file type {suffix!r} (use one of {', '.join(FILE_SUFFIXES)})", where=str(path))
