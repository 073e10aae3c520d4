"""(IA)^3 (peft): learned scaling vectors on keys, values and the feed-forward activations."""

from __future__ import annotations

from pydantic import Field

from .base import Footprint, Method, MethodOptions, WrapContext
from .peft_tuner import PEFT_FILES, load_peft, load_peft_trainable, merge_peft, peft_model, save_peft


class IA3Options(MethodOptions):
    target_modules: list[str] | None = Field(None, description="default: peft's table for the model type")
    feedforward_modules: list[str] | None = None


def targets(options: IA3Options, model_type: str) -> tuple[list[str], list[str]] | None:
    """(target_modules, feedforward_modules): the options', else peft's table for the model type, else the
    architecture table's key/value projections and FFN output (``anatomy.ARCHITECTURES``); None if none."""
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as ff_default
    from peft.utils import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as target_default

    from ..anatomy import ARCHITECTURES

    if options.target_modules is not None:  # peft's own rule: feed-forward modules from its table unless given
        ff = options.feedforward_modules
        return list(options.target_modules), list(ff if ff is not None else ff_default.get(model_type, []))
    if model_type in target_default:
        return list(target_default[model_type]), list(ff_default.get(model_type, []))
    row = ARCHITECTURES.get(model_type)
    if row is None or not row.kv:
        return None
    return [*row.kv, row.ffn], [row.ffn]


def check_model(options: IA3Options, config, task: str) -> str | None:
    if targets(options, config.model_type) is None:
        return (f"ia3 has no default target modules for model type {config.model_type!r}; "
                "set method.target_modules and method.feedforward_modules")
    return None


def footprint(options: IA3Options, shape) -> Footprint:
    """One scaling vector per targeted linear: out_features for attention targets, in_features for
    feed-forward ones (``targets``); + task head."""
    found = targets(options, shape.model_type) or ([], [])
    targets_, ff = found[0], set(found[1])
    total = 0
    for name, i, o in shape.linears:
        key = next((t for t in targets_ if name == t or name.endswith("." + t)), None)
        if key is not None:
            total += i if key in ff else o
    return Footprint(total + shape.task_head_params, keeps_linear_inputs=False)


def wrap(model, options: IA3Options, ctx: WrapContext):
    from peft import IA3Config

    target_modules, feedforward = targets(options, model.config.model_type) or (None, None)
    config = IA3Config(task_type=ctx.peft_task_type, target_modules=target_modules,
                       feedforward_modules=feedforward)
    return peft_model(model, config)


METHOD = Method(
    name="ia3",
    trains="scaling vectors on attention keys/values and FFN activations (+ task head)",
    options=IA3Options,
    peft_type="IA3",
    default_learning_rate=1e-2,  # +1.1 F1 over 5e-3 on sentiment (docs/defaults.md)
    wrap=wrap,
    save=save_peft,
    load=load_peft,
    saved_files=PEFT_FILES,
    load_trainable=load_peft_trainable,
    can_disable=True,
    merge=merge_peft,
    check_model=check_model,
    footprint=footprint,
)
