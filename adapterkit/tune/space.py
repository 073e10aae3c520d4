"""The search space of ``adapterkit tune``: dotted recipe keys, each with its choices or range.

It comes from the recipe's ``[tune]`` table (TOML dotted keys, ``method.r = [4, 8, 16]``) and from
``--space KEY=VALUE`` items, which replace the recipe's entry for the same key. A value is

- a list: categorical choices (strings, numbers, booleans): ``method.name = ["lora", "ia3", "bottleneck"]``
- ``"LOW..HIGH"``: uniform between two numbers, integers when both are integers: ``method.r = "4..32"``
- ``"LOW..HIGH:log"``: log-uniform: ``train.learning_rate = "1e-5..1e-2:log"``

A ``method.X`` key applies only to the trials whose method takes option X (``method.r`` to lora and
not to ia3); a trial of another method than the recipe's runs that method at its defaults, as in
``adapterkit compare``. Every key and every choice or bound is checked as the recipe key it sets
(``plan.load_recipe``), so a typo stops the search before it starts, with a one-line error naming it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compare import method_overrides
from ..errors import UserError
from ..overrides import parse_override
from ..recipe import Recipe

METHOD_NAME = "method.name"
_RANGE = re.compile(r"^\s*([^.\s][^\s]*?)\s*\.\.\s*([^\s:]+)\s*(?::\s*(\w+)\s*)?$")
_EXAMPLE = 'expected a list of choices such as [4, 8, 16] or a range such as "1e-5..1e-2:log"'


@dataclass(frozen=True)
class Dimension:
    key: str  # the dotted recipe key it sets, also the Optuna parameter's name
    where: str  # "<recipe>: tune.<key>" or "--space <key>", for messages
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def integer(self) -> bool:
        return self.choices is None and isinstance(self.low, int) and isinstance(self.high, int)

    def values(self) -> tuple:
        """The values to check: every choice, or both bounds."""
        return self.choices if self.choices is not None else (self.low, self.high)

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.key} in {list(self.choices)}"
        return f"{self.key} in {self.low}..{self.high}{' (log)' if self.log else ''}"

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, self.low, self.high, log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)


def literal(value: Any) -> str:
    """A value as a TOML literal for ``--set KEY=VALUE`` (JSON's scalars are TOML's)."""
    return json.dumps(value)


def _number(text: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


def parse_dimension(key: str, value: Any, where: str) -> Dimension:
    if isinstance(value, list):
        if not value:
            raise UserError("an empty list of choices", where=where)
        if any(not isinstance(v, (str, int, float, bool)) for v in value):
            raise UserError(f"{value!r}: choices must be strings, numbers or booleans", where=where)
        if len(set(map(literal, value))) != len(value):
            raise UserError(f"{value!r}: a choice is repeated", where=where)
        return Dimension(key, where, choices=tuple(value))
    match = _RANGE.match(value) if isinstance(value, str) else None
    if not match:
        raise UserError(f"{value!r}: {_EXAMPLE}", where=where)
    low, high, scale = _number(match[1]), _number(match[2]), match[3]
    if low is None or high is None:
        raise UserError(f"{value!r}: the bounds of a range must be numbers", where=where)
    if scale not in (None, "log"):
        raise UserError(f"{value!r}: unknown scale {scale!r} (only :log)", where=where)
    if not low < high:
        raise UserError(f"{value!r}: the low bound must be below the high one", where=where)
    if scale == "log" and low <= 0:
        raise UserError(f"{value!r}: a log range needs a positive low bound", where=where)
    return Dimension(key, where, low=low, high=high, log=scale == "log")


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def read_space(recipe: Recipe, items: list[str] | None = None) -> dict[str, Dimension]:
    """The recipe's ``[tune]`` table with ``--space`` items on top, parsed (not yet checked: ``check_space``)."""
    space = {key: parse_dimension(key, value, f"{recipe.source}: tune.{key}")
             for key, value in _flatten(recipe.tune).items()}
    for item in items or []:
        path, value = parse_override(item, "--space")
        key = ".".join(path)
        space[key] = parse_dimension(key, value, f"--space {key}")
    if not space:
        raise UserError("no search space: add a [tune] table (e.g. train.learning_rate = \"1e-5..1e-2:log\") or "
                        "give --space KEY=VALUE", where=recipe.source)
    return space


def methods_of(space: dict[str, Dimension], recipe: Recipe) -> tuple[str, ...]:
    """The methods the search tries: ``method.name``'s choices, else the recipe's own method."""
    dim = space.get(METHOD_NAME)
    if dim is None:
        return (recipe.method.name,)
    if dim.choices is None or not all(isinstance(c, str) for c in dim.choices):
        raise UserError("method names are chosen from a list, e.g. [\"lora\", \"ia3\"]", where=dim.where)
    return dim.choices


def accepts(method: str, key: str) -> bool:
    """Whether a trial of ``method`` sets ``key`` (a method.X key only where the method takes option X)."""
    from ..methods import METHODS

    if not key.startswith("method."):
        return True
    return key.removeprefix("method.") in METHODS.get(method).options.model_fields


def _message(err: UserError) -> str:
    text = str(err)
    prefix = f"{err.where}: " if err.where else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def check_space(space: dict[str, Dimension], recipe: Recipe, recipe_path: Path, user_sets: list[str]) -> None:
    """Every method named, every key a recipe key and every choice or bound a valid value of it."""
    from ..methods import METHODS
    from ..plan import load_recipe

    methods = methods_of(space, recipe)
    for name in methods:
        METHODS.get(name, where=space[METHOD_NAME].where if METHOD_NAME in space else f"{recipe.source}: method.name")
    for key, dim in space.items():
        if key == METHOD_NAME:
            continue
        takers = [m for m in methods if accepts(m, key)]
        if not takers:
            raise UserError(f"no method in the search ({', '.join(methods)}) takes option "
                            f"{key.removeprefix('method.')!r}", where=dim.where)
        for value in dim.values():
            for method in takers:
                sets = [*method_overrides(method, recipe.method.name, user_sets), f"{key}={literal(value)}"]
                try:
                    load_recipe(recipe_path, sets)
                except UserError as err:
                    raise UserError(f"{value!r}{' for ' + method if key.startswith('method.') else ''}: "
                                    f"{_message(err)}", where=dim.where) from None


def suggest(trial, space: dict[str, Dimension], recipe: Recipe, user_sets: list[str]) -> list[str]:
    """The ``--set`` items of one trial: its method first, then each key that applies to that method."""
    dim = space.get(METHOD_NAME)
    method = dim.suggest(trial) if dim else recipe.method.name
    sets = method_overrides(method, recipe.method.name, user_sets)
    for key, dim in space.items():
        if key != METHOD_NAME and accepts(method, key):
            sets.append(f"{key}={literal(dim.suggest(trial))}")
    return sets
