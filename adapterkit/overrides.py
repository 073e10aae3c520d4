"""``--set KEY=VALUE`` overrides: parsed as TOML literals and applied to a recipe's dotted keys.

A value that is not a TOML literal is kept as a string (``model.name=builtin:minilm-l6``), except one that opens
an inline table or an array: the shell has usually eaten its quotes (``--set method={name="loha"}`` arrives as
``method={name=loha}``), and as a string it would fail later with a type error far from the cause. It is refused
here, in one line that shows the argument quoted as it must be typed.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from .errors import UserError

# a bare word in a value position of an inline table or array: after '{', '[', ',' or '=' (a key is followed by '=')
_BARE_WORD = re.compile(r"(?<=[\[{,=])(\s*)([A-Za-z_][\w.:/-]*)(?=\s*[,\]}])")
_TOML_WORDS = {"true", "false", "inf", "nan"}


def _toml(raw: str) -> Any:
    return tomllib.loads(f"v = {raw}")["v"]


def _hint(option: str, key: str, raw: str) -> str:
    """What to type: the argument with its bare words quoted, in single quotes, when that is valid TOML."""
    fixed = _BARE_WORD.sub(lambda m: m.group(0) if m.group(2) in _TOML_WORDS else f'{m.group(1)}"{m.group(2)}"', raw)
    try:
        _toml(fixed)
    except tomllib.TOMLDecodeError:
        return "check its brackets and commas, and single-quote the whole argument"
    return f"strings inside need quotes, which the shell drops unless the argument is quoted: type {option} '{key}={fixed}'"


def parse_override(item: str, option: str = "--set") -> tuple[list[str], Any]:
    """``train.max_steps=20`` -> (["train", "max_steps"], 20). Values are TOML literals, else strings; a malformed
    inline table or array is a one-line error (see the module) naming ``option``, the flag that gave ``item``."""
    key, sep, raw = item.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise UserError(f"{option} {item!r}: expected KEY=VALUE such as train.max_steps=20")
    try:
        value = _toml(raw)
    except tomllib.TOMLDecodeError as err:
        if raw[:1] in "{[":
            kind = "inline table" if raw.startswith("{") else "array"
            reason = str(err).split(" (at ")[0]  # its column counts a prefix the user never typed
            raise UserError(f"{option} {item!r}: not a TOML {kind} ({reason}); {_hint(option, key, raw)}") from None
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Set dotted keys; ``overrides`` is a mapping {"train.max_steps": 20} or a list of ``KEY=VALUE`` (the library's
    ``overrides=``; a path value such as ``pathlib.Path`` is set as its string)."""
    if not overrides:
        return data
    items = [_parse_item(o) for o in overrides] if isinstance(overrides, (list, tuple)) else [
        _dotted_key(k, v) for k, v in _mapping(overrides).items()]
    for path, value in items:
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {'.'.join(path)}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def _mapping(overrides) -> dict:
    if not isinstance(overrides, dict):
        raise UserError(f"overrides must be a dict such as {{'train.max_steps': 20}} or a list of 'KEY=VALUE' strings, "
                        f"not {type(overrides).__name__}")
    return overrides


def _parse_item(item) -> tuple[list[str], Any]:
    if not isinstance(item, str):
        raise UserError(f"overrides: {item!r} is not a 'KEY=VALUE' string (for values of other types pass a dict "
                        "such as {'train.max_steps': 20})")
    return parse_override(item)


def _dotted_key(key, value) -> tuple[list[str], Any]:
    import os

    if not isinstance(key, str) or not key.strip():
        raise UserError(f"overrides: key {key!r} is not a dotted recipe key such as 'train.max_steps'")
    return key.strip().split("."), os.fspath(value) if isinstance(value, os.PathLike) else value
