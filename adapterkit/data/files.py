"""Read example files into rows, keeping each row's file:line for error messages.

Formats by suffix: ``.jsonl``/``.json`` (one object a line, or a JSON list), ``.csv``/``.tsv``,
``.parquet``, and ``.conll``/``.txt`` (token<TAB or space>tag a line, blank line between sentences).

A row that cannot be read (broken JSON, a CSV line with the wrong number of fields, a bad CoNLL line) raises
with its file:line, or with ``on_error="skip"`` becomes ``{"_where": ..., "_problem": ...}``, which the
task's row check (tasks/rows.py) then counts as skipped.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import UserError

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".conll", ".txt", ".bio")


def bad_row(problem: str, where: str | None, on_error: str) -> dict:
    """Raise for a bad row (``on_error="fail"``), else the row that stands for it until it is counted."""
    if on_error == "fail":
        raise UserError(f"{problem} (set data.on_error = \"skip\" to drop such rows)", where=where)
    return {"_where": where, "_problem": problem}


def read_jsonl(path: Path, on_error: str = "fail") -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"not valid JSON: {err.msg}", where=f"{path}:{err.lineno}") from None
        return [_row(item, f"{path}#{i + 1}", on_error) for i, item in enumerate(items)]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            rows.append(bad_row(f"not valid JSON ({err.msg})", f"{path}:{n}", on_error))
            continue
        rows.append(_row(item, f"{path}:{n}", on_error))
    return rows


def _row(item, where: str, on_error: str) -> dict:
    if not isinstance(item, dict):
        return bad_row(f"expected a JSON object, got {type(item).__name__}", where, on_error)
    return {**item, "_where": where}


def read_csv(path: Path, on_error: str = "fail") -> list[dict]:
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
        for rec in reader:
            where = f"{path}:{reader.line_num}"
            if None in rec or None in rec.values():  # DictReader's marks of extra / missing fields
                more = "more" if None in rec else "fewer"
                rows.append(bad_row(f"{more} fields than the header's {len(reader.fieldnames)}", where, on_error))
            else:
                rows.append({**rec, "_where": where})
    return rows


def read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return [{**rec, "_where": f"{path}#row{i + 1}"} for i, rec in enumerate(table.to_pylist())]


def read_conll(path: Path, on_error: str = "fail") -> list[dict]:
    """CoNLL-style: the first column is the token, the last the tag; ``-DOCSTART-`` lines are ignored."""
    rows, tokens, tags, start, bad = [], [], [], 1, None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if bad or tokens:
                rows.append(bad or {"tokens": tokens, "tags": tags, "_where": f"{path}:{start}"})
            tokens, tags, start, bad = [], [], n + 1, None
            continue
        if len(parts) < 2:
            bad = bad or bad_row(f"expected 'token<TAB>tag', got {line.strip()!r}", f"{path}:{n}", on_error)
        tokens.append(parts[0])
        tags.append(parts[-1])
    if bad or tokens:
        rows.append(bad or {"tokens": tokens, "tags": tags, "_where": f"{path}:{start}"})
    return rows


def read_file(path: Path, on_error: str = "fail") -> list[dict]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path, on_error)
    if suffix in (".csv", ".tsv"):
        return read_csv(path, on_error)
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix in (".conll", ".txt", ".bio"):
        return read_conll(path, on_error)
    raise UserError(f"unsupported file type {suffix!r} (use one of {', '.join(FILE_SUFFIXES)})", where=str(path))
