"""Recipe files: TOML -> typed, frozen sections, validated before anything heavy is imported.

A recipe has six sections. ``[method]`` and ``[task]`` carry a ``name`` plus that method's or task's
own options, which are validated by the options model the method or task declares (``plan.load_recipe``).
The bottom layer: this module imports nothing of adapterkit but ``errors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .errors import UserError

MAX_STEPS = 10**8  # bounds that catch a typo (1e23 steps), far above any real run


def _numeric_not_bool(annotation) -> bool:
    """Whether a field's type takes numbers but not booleans (pydantic would read true as 1)."""
    import typing

    args = typing.get_args(annotation) or (annotation,)
    return bool({int, float} & set(args)) and bool not in args


class Checked(BaseModel):
    """Base of every recipe table and of methods' and tasks' options: unknown keys are errors, and
    ``true``/``false`` is not accepted where a number is expected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value, info: ValidationInfo):
        field = cls.model_fields.get(info.field_name) if info.field_name else None
        if isinstance(value, bool) and field is not None and _numeric_not_bool(field.annotation):
            raise ValueError("expected a number, not true/false")
        return value


class Section(Checked):
    pass


class ModelSection(Section):
    """The pretrained model: a hub id, a local folder, or ``builtin:<name>``."""

    name: str
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    dropout: float | None = Field(None, ge=0, lt=1, description="set every dropout probability of the model's "
                                                                 "config (hidden, attention, classifier) to this; "
                                                                 "None keeps the checkpoint's")
    adapter: str | None = Field(None, description="a saved adapter to continue training: RUN_DIR/adapter of an "
                                                   "earlier run (a glob such as runs/chat_lora-*/adapter picks the "
                                                   "newest); its method and base model must be this recipe's")


class NamedSection(BaseModel):
    """A section whose other keys are options of the named method or task."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataSection(Section):
    """Where examples come from. ``train``/``eval`` take a file (.jsonl/.json/.csv/.parquet/.conll/.txt),
    ``builtin:<name>``, or a hub dataset id; ``eval`` may instead be a fraction of train to hold out."""

    train: str
    eval: str | float = 0.1
    limit_train: int | None = Field(None, gt=0)
    limit_eval: int | None = Field(None, gt=0)
    split_seed: int = 0
    on_error: Literal["fail", "skip"] = "fail"

    @field_validator("eval")
    @classmethod
    def _fraction_between_0_and_1(cls, value):
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError("as a share of train it must be between 0 and 1 (or name a file or dataset)")
        return value


class TrainSection(Section):
    """Optimisation budget. ``max_steps`` > 0 overrides ``epochs``; ``learning_rate`` defaults to the method's."""

    max_steps: int = Field(-1, ge=-1, le=MAX_STEPS)
    epochs: float = Field(1.0, gt=0, le=10**6)
    learning_rate: float | None = Field(None, gt=0, lt=10)
    batch_size: int = Field(8, gt=0, le=2**20)
    eval_batch_size: int | None = Field(None, gt=0, le=2**20)
    grad_accum: int = Field(1, gt=0, le=2**20)
    seed: int = 0
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    max_grad_norm: float = Field(1.0, gt=0)
    logging_steps: int = Field(10, gt=0, le=MAX_STEPS)
    save_every: int | None = Field(None, gt=0, le=MAX_STEPS, description="checkpoint every N optimizer steps")
    save_minutes: float | None = Field(10.0, gt=0, description="checkpoint when this many minutes of training "
                                                               "passed since the last one (None: off)")

    @property
    def eval_batch(self) -> int:
        """The eval batch: ``eval_batch_size``, else 2 x ``batch_size`` (no activations kept for backward)."""
        return self.eval_batch_size or 2 * self.batch_size


class HardwareSection(Section):
    """Which hardware profile to plan for (``auto`` detects this machine), and overrides of its defaults."""

    profile: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool | None = None


class Recipe(Section):
    name: str = Field("recipe", description="run name; defaults to the file's stem")
    model: ModelSection
    method: NamedSection
    task: NamedSection
    data: DataSection
    train: TrainSection = TrainSection()
    hardware: HardwareSection = HardwareSection()
    source: str = Field("<memory>", exclude=True, description="file the recipe came from, for messages")


def parse_override(item: str) -> tuple[list[str], Any]:
    """``train.max_steps=20`` -> (["train", "max_steps"], 20). Values are TOML literals, else strings."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {item!r}: expected KEY=VALUE such as train.max_steps=20")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Set dotted keys; ``overrides`` is a mapping {"train.max_steps": 20} or a list of ``KEY=VALUE``."""
    if not overrides:
        return data
    items = [parse_override(o) for o in overrides] if isinstance(overrides, list) else [
        (k.split("."), v) for k, v in overrides.items()]
    for path, value in items:
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {'.'.join(path)}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def describe_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line: ``train.max_steps: Input should be a valid integer (got 'x')``; several joined by '; '."""
    parts = []
    for e in err.errors():
        loc = ".".join([prefix, *(str(p) for p in e["loc"])] if prefix else [str(p) for p in e["loc"]])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            shown = repr(e.get("input"))
            msg += f" (got {shown[:60]})" if "input" in e and not isinstance(e.get("input"), dict) else ""
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def recipe_from_dict(data: dict[str, Any], *, source: str = "<memory>", name: str | None = None) -> Recipe:
    """The recipe's sections, validated; the named method's and task's own options are validated a layer up
    (``plan.load_recipe`` / ``plan.make_plan``), where the registries live."""
    if not isinstance(data, dict):
        raise UserError("a recipe must be a table of sections", where=source)
    data = dict(data)
    data.setdefault("name", name or "recipe")
    data["source"] = source
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise UserError(describe_validation_error(err), where=source) from None


def read_recipe(path: str | Path, overrides: dict[str, Any] | list[str] | None = None) -> Recipe:
    """Read a recipe file and validate its sections (``plan.load_recipe`` also validates the named options)."""
    path = Path(path)
    if not path.is_file():
        raise UserError("recipe file not found", where=str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"not valid TOML: {err}", where=str(path)) from None
    try:
        data = apply_overrides(data, overrides)
    except UserError as err:  # a malformed --set: name the recipe it was meant for
        raise UserError(str(err), where=str(path)) from None
    return recipe_from_dict(data, source=str(path), name=path.stem)


def recipe_to_toml(recipe: Recipe, resolved: dict[str, dict[str, Any]] | None = None) -> str:
    """The recipe as TOML, with resolved method/task options (defaults filled in) when given."""
    import tomli_w

    data = recipe.model_dump(exclude_none=True)
    for section, options in (resolved or {}).items():
        filled = {k: v for k, v in options.items() if v is not None}
        data[section] = {"name": data[section]["name"], **filled}
    return tomli_w.dumps(data)
