"""Recipe files: TOML -> typed, frozen sections, validated before anything heavy is imported.

A recipe has six sections, and optionally ``[tune]``, the search space of ``adapterkit tune``. ``[method]``
and ``[task]`` carry a ``name`` plus that method's or task's
own options, which are validated by the options model the method or task declares (``plan.load_recipe``).
Near the bottom layer: this module imports nothing of adapterkit but ``overrides`` (``--set``) and ``errors``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .errors import UserError
from .overrides import apply_overrides

MAX_STEPS = 10**8  # bounds that catch a typo (1e23 steps), far above any real run
# Where a run's training curves go (``train.report_to``): transformers' reporting integrations; the package each needs.
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


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
    ``builtin:<name>``, a ``datasets`` folder written by ``save_to_disk``, or a hub dataset id, each optionally
    followed by ``:<split>``; ``eval`` may instead be a fraction of train to hold out. The rows' format
    (messages, sharegpt, alpaca, prompt/completion, preference, text) is detected from their columns
    (``adapterkit.data.formats``)."""

    train: str
    eval: str | float = 0.1
    limit_train: int | None = Field(None, gt=0)
    limit_eval: int | None = Field(None, gt=0)
    split_seed: int = 0
    on_error: Literal["fail", "skip"] = "fail"
    format: Literal["auto", "messages", "sharegpt", "alpaca", "prompt_completion", "preference", "text"] = Field(
        "auto", description="how rows are read; auto: detected from the columns")
    columns: dict[str, str] = Field(default_factory=dict, description="standard column name -> the file's column, "
                                                                      "e.g. {text = \"review\", label = \"sentiment\"}")
    roles: dict[str, str] = Field(default_factory=dict, description="sharegpt role names -> system, user or "
                                                                    "assistant, added to the usual ones (human, gpt...)")
    streaming: bool = Field(False, description="read a hub dataset or datasets folder as it trains, never whole "
                                               "(an IterableDataset shuffled with a buffer; needs train.max_steps)")
    shuffle_buffer: int = Field(10_000, gt=0, description="streaming: rows held for shuffling")

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {k: v for k, v in value.items() if v not in ("system", "user", "assistant")}
        if bad:
            raise ValueError(f"roles map to system, user or assistant; got {bad}")
        return value

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
    eval_every: int | None = Field(None, gt=0, le=MAX_STEPS, description="evaluate every N optimizer steps during training")
    save_minutes: float | None = Field(10.0, gt=0, description="checkpoint when this many minutes of training "
                                                               "passed since the last one (None: off)")
    eval_every: int | None = Field(None, gt=0, le=MAX_STEPS, description="evaluate every N optimizer steps during training")
    keep_best: str | None = Field(None, pattern=r"^eval_\w+$", description="keep the checkpoint with the best value "
                                  "of this eval metric (e.g. eval_macro_f1) and load it at the end; needs eval_every")
    early_stopping_patience: int | None = Field(None, gt=0, le=MAX_STEPS, description="stop after this many "
                                                "evaluations without improvement of keep_best (default metric: "
                                                "the task's); needs eval_every")
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "none"]] = Field(
        ["tensorboard"], description="where the training curves go (RUN_DIR/logs): tensorboard, wandb (offline), "
                                     "mlflow (local file store), or none")

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("report_to")
    @classmethod
    def _trackers_installed(cls, value: list[str]) -> list[str]:
        import importlib.util

        if "none" in value and len(value) > 1:
            raise ValueError('"none" cannot be combined with a tracker')
        for name in value:
            if name in TRACKERS and importlib.util.find_spec(TRACKERS[name]) is None:
                raise ValueError(f"{name} is not installed (pip install {TRACKERS[name]}), or remove it from the list")
        return [] if value == ["none"] else value

    @model_validator(mode="after")
    def _evaluated_during_training(self):
        if (self.keep_best or self.early_stopping_patience) and not self.eval_every:
            what = "keep_best" if self.keep_best else "early_stopping_patience"
            raise ValueError(f"{what} needs train.eval_every (how often to evaluate during training)")
        if (self.keep_best or self.early_stopping_patience) and self.save_every and self.save_every % self.eval_every:
            raise ValueError(f"save_every ({self.save_every}) must be a multiple of eval_every ({self.eval_every}) "
                             "when the best checkpoint is kept")
        return self

    @property
    def eval_batch(self) -> int:
        """The eval batch: ``eval_batch_size``, else 2 x ``batch_size`` (no activations kept for backward)."""
        return self.eval_batch_size or 2 * self.batch_size


class HardwareSection(Section):
    """Which hardware profile to plan for (``auto`` detects this machine), and overrides of its defaults."""

    profile: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool | None = None
    devices: int | None = Field(None, gt=0, le=1024, description="worker processes (one per device) on each "
                                                                   "node; None: the profile's")
    nodes: int = Field(1, gt=0, le=4096, description="machines taking part (--nnodes); world size = nodes x devices")
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = Field(
        "auto", description="how several devices share the work; auto: DDP if the model fits one device with room "
                            "to spare, else the cheapest sharded strategy that fits (memory/sharding.py)")
    cpu_offload: bool = Field(False, description="sharded strategies: keep parameters/optimizer state in CPU RAM")
    timeout_minutes: float = Field(10.0, gt=0, description="how long a rank waits for the others (a dead rank "
                                                          "ends the run after this at most)")


class Recipe(Section):
    name: str = Field("recipe", description="run name; defaults to the file's stem")
    model: ModelSection
    method: NamedSection
    task: NamedSection
    data: DataSection
    train: TrainSection = TrainSection()
    hardware: HardwareSection = HardwareSection()
    tune: dict[str, Any] = Field(default_factory=dict, description="the search space of ``adapterkit tune`` (dotted "
                                 "recipe keys -> choices or ranges), checked by ``adapterkit.tune.space``; a run "
                                 "ignores it")
    source: str = Field("<memory>", exclude=True, description="file the recipe came from, for messages")


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
    if path.is_dir():
        raise UserError("is a folder, not a recipe file (a .toml such as recipes/chat_lora.toml)", where=str(path))
    if not path.is_file():
        raise UserError("recipe file not found", where=str(path))
    try:  # utf-8-sig: an editor's invisible byte-order mark is not a TOML error at line 1, column 1
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
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

    data = recipe.model_dump(exclude_none=True, exclude={"tune"})  # a run's recipe: the search space is not part of it
    for section, options in (resolved or {}).items():
        filled = {k: v for k, v in options.items() if v is not None}
        data[section] = {"name": data[section]["name"], **filled}
    return tomli_w.dumps(data)
