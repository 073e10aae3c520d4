"""Read example files into rows, keeping each row's file:line for error messages.

Formats by suffix: ``.jsonl``/``.json`` (one object a line, or a JSON list), ``.csv``/``.tsv``,
``.parquet``, and ``.conll``/``.txt`` (token<TAB or space>tag a line, blank line between sentences).

Text files are read as UTF-8; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is dropped, and a file that
opens with a UTF-16 byte-order mark (Excel's "Unicode text") is decoded as UTF-16. Any other encoding is
refused with the file, line and byte offset of the first byte that is not UTF-8, and how to convert it.

A row that cannot be read (broken JSON, a CSV line with the wrong number of fields, a bad CoNLL line) raises
with its file:line, or with ``on_error="skip"`` becomes ``{"_where": ..., "_problem": ...}``, which the
task's row check (tasks/rows.py) then counts as skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from pathlib import Path

from ..errors import UserError

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".conll", ".txt", ".bio")


def bad_row(problem: str, where: str | None, on_error: str) -> dict:
    """Raise for a bad row (``on_error="fail"``), else the row that stands for it until it is counted."""
    if on_error == "fail":
        raise UserError(f"{problem} (set data.on_error = \"skip\" to drop such rows)", where=where)
    return {"_where": where, "_problem": problem}


def read_text(path: Path) -> str:
    """The file's text (see the module docstring for encodings); one UserError line if it is not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as err:  # no read permission, a file that vanished, an I/O error
        raise UserError(f"cannot read it ({err.strerror or type(err).__name__})", where=str(path)) from None
    encoding = "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    if encoding != "utf-16" and b"\0" in raw:  # UTF-16 without a byte-order mark: NUL bytes beside ASCII ones
        line = raw.count(b"\n", 0, raw.index(b"\0")) + 1
        raise UserError(f"holds NUL bytes, so it is probably UTF-16 without a byte-order mark; convert it, e.g. "
                        f"iconv -f utf-16le -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}",
                        where=f"{path}:{line}")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        if encoding == "utf-16":
            raise UserError(f"not UTF-16 text after its UTF-16 byte-order mark: bytes at offset {err.start} cannot be "
                            f"decoded ({err.reason}); save it again as UTF-8", where=str(path)) from None
        line = raw.count(b"\n", 0, err.start) + 1
        raise UserError(f"not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start} cannot be decoded; "
                        f"convert the file, e.g. iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix} "
                        "(cp1252 for Windows files)", where=f"{path}:{line}") from None


def text_lines(text: str) -> list[str]:
    """Lines split at \\n only (``str.splitlines`` also splits at U+2028 and others, which JSON strings may hold)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def read_jsonl(path: Path, on_error: str = "fail") -> list[dict]:
    text = read_text(path)
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"not valid JSON: {err.msg}", where=f"{path}:{err.lineno}") from None
        except (ValueError, RecursionError) as err:
            raise UserError(f"not readable JSON: {str(err).splitlines()[0][:80]}", where=str(path)) from None
        return [_row(item, f"{path}#{i + 1}", on_error) for i, item in enumerate(items)]
    return [jsonl_row(line, f"{path}:{n}", on_error) for n, line in enumerate(text_lines(text), 1) if line.strip()]


def jsonl_row(line: str, where: str, on_error: str) -> dict:
    """One JSON Lines line as a row (or the bad row that stands for it; see ``bad_row``)."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        return bad_row(f"not valid JSON ({err.msg})", where, on_error)
    except (ValueError, RecursionError) as err:  # an integer of over 4,300 digits, nesting too deep
        return bad_row(f"not readable JSON ({str(err).splitlines()[0][:80]})", where, on_error)
    return _row(item, where, on_error)


def _row(item, where: str, on_error: str) -> dict:
    if not isinstance(item, dict):
        return bad_row(f"expected a JSON object, got {type(item).__name__}", where, on_error)
    return {**item, "_where": where}


def read_csv(path: Path, on_error: str = "fail") -> list[dict]:
    return list(csv_rows(io.StringIO(read_text(path), newline=""), path, on_error))


def csv_rows(lines, path: Path, on_error: str = "fail"):
    """Each record of CSV/TSV text (an iterable of its lines, read with ``newline=""``) as a row with its
    ``file:line``; a record with more or fewer fields than the header is a bad row (``bad_row``). The whole-file
    reader and the stream (``streaming.py``) both read through here."""
    csv.field_size_limit(max(csv.field_size_limit(), sys.maxsize >> 33))  # giant fields are cut by the task
    reader = csv.DictReader(lines, delimiter="\t" if path.suffix == ".tsv" else ",")
    try:
        seen = set()
        for name in reader.fieldnames or []:
            if name in seen and name.strip():
                raise UserError(f"column {name!r} appears twice in the header", where=f"{path}:{reader.line_num}")
            seen.add(name)
        for rec in reader:
            # a record's first line: line_num is its last, later by the newlines its quoted fields hold
            inner = sum(v.count("\n") for v in rec.values() if isinstance(v, str))
            where = f"{path}:{reader.line_num - inner}"
            if None in rec or None in rec.values():  # DictReader's marks of extra / missing fields
                more = "more" if None in rec else "fewer"
                yield bad_row(f"{more} fields than the header's {len(reader.fieldnames)}", where, on_error)
            else:
                yield {**rec, "_where": where}
    except csv.Error as err:
        raise UserError(f"not readable CSV: {err}", where=f"{path}:{reader.line_num}") from None


def read_parquet(path: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"not a readable Parquet file: {str(err).splitlines()[0][:120]}", where=str(path)) from None
    return [{**rec, "_where": f"{path}#row{i + 1}"} for i, rec in enumerate(table.to_pylist())]


def read_conll(path: Path, on_error: str = "fail") -> list[dict]:
    """CoNLL-style: the first column is the token, the last the tag; ``-DOCSTART-`` lines are ignored."""
    rows, tokens, tags, start, bad = [], [], [], 1, None
    for n, line in enumerate(text_lines(read_text(path)), 1):
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
