"""A small named registry: explicit entries plus Python entry-point plugins."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to records. Built-ins are listed explicitly by a loader function; third parties
    add records through the entry point group ``group`` (each entry point resolves to a record)."""

    def __init__(self, kind: str, group: str, builtins: Callable[[], list[T]]):
        self.kind = kind
        self.group = group
        self._builtins = builtins
        self._records: dict[str, T] | None = None

    def _load(self) -> dict[str, T]:
        if self._records is None:
            records: dict[str, T] = {}
            for record in self._builtins():
                records[record.name] = record
            for ep in entry_points(group=self.group):
                record = ep.load()
                if record.name in records:
                    raise UserError(f"plugin {ep.value!r} registers {self.kind} {record.name!r}, which exists already")
                records[record.name] = record
            self._records = records
        return self._records

    def register(self, record: T) -> T:
        """Add a record at run time (for code that cannot ship an entry point)."""
        self._load()[record.name] = record
        return record

    def names(self) -> list[str]:
        return list(self._load())

    def get(self, name: str, *, where: str | None = None, ignore_case: bool = False) -> T:
        """The record named ``name``; ``ignore_case``: also the one record whose name differs only in case."""
        records = self._load()
        if name in records:
            return records[name]
        folded = {}
        for known in records:
            folded.setdefault(known.lower(), []).append(known)
        same = folded.get(str(name).lower(), [])
        if ignore_case and len(same) == 1:
            return records[same[0]]
        close = same[:1] or [folded[c][0] for c in difflib.get_close_matches(str(name).lower(), folded, n=1)]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(records)})", where=where)

    def __iter__(self) -> Iterator[T]:
        return iter(self._load().values())

    def __contains__(self, name: str) -> bool:
        return name in self._load()
