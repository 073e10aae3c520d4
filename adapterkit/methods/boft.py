"""BOFT (peft): orthogonal fine-tuning whose rotation is a product of sparse butterfly factors of small
orthogonal blocks (fewer parameters than OFT for the same reach), plus a learned output scale; the task head
trains fully."""

from __future__ import annotations

from pydantic import Field

from .base import Footprint, Method, MethodOptions, WrapContext
from .conv1d import refuse_conv1d
from .lora import targeted_linears
from .peft_tuner import PEFT_FILES, load_peft, merge_peft, peft_model, save_peft


class BoftOptions(MethodOptions):
    block_size: int = Field(4, gt=0, le=4096, description="size of each orthogonal block (divides in_features)")
    n_butterfly_factor: int = Field(1, ge=1, le=32, description="butterfly factors (1: block-diagonal, as OFT)")
    dropout: float = Field(0.0, ge=0, lt=1, description="multiplicative dropout on the blocks")
    target_modules: list[str] | str | None = Field(None, description="default: peft's table for the model type "
                                                   "(attention query/value projections)")


def targets(options: BoftOptions, model_type: str) -> list[str] | str | None:
    """The options' target modules, else peft's table for the model type (None: the type is not in it).

    Not "all-linear" by default: each adapted layer multiplies by factors x in_features² permutation matrices
    every forward: all-linear BOFT took ~4x the other new tuners' time in the NER contract test on MiniLM."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_BOFT_TARGET_MODULES_MAPPING as table

    return options.target_modules if options.target_modules is not None else table.get(model_type)


def check_model(options: BoftOptions, config, task: str) -> str | None:
    if (reason := refuse_conv1d("boft", config)) is not None:
        return reason
    if targets(options, config.model_type) is None:
        return (f"boft has no default target modules for model type {config.model_type!r}; "
                "set method.target_modules")
    return None


def footprint(options: BoftOptions, shape) -> Footprint:
    """factors x in_features x block_size rotation entries + out_features scales per adapted linear. (Each layer
    also holds factors x in_features² permutation buffers, frozen; not counted.)"""
    found = targets(options, shape.model_type)
    targeted = targeted_linears(options.model_copy(update={"target_modules": found}), shape) if found else []
    adapters = sum(options.n_butterfly_factor * i * options.block_size + o for _, i, o in targeted)
    return Footprint(adapters + shape.task_head_params)


def wrap(model, options: BoftOptions, ctx: WrapContext):
    from peft import BOFTConfig

    config = BOFTConfig(task_type=ctx.peft_task_type, boft_block_size=options.block_size, boft_block_num=0,
                        boft_n_butterfly_factor=options.n_butterfly_factor, boft_dropout=options.dropout,
                        target_modules=targets(options, model.config.model_type))
    return peft_model(model, config)


METHOD = Method(
    name="boft",
    trains="butterfly-factored orthogonal rotations of linear layers' weights (+ task head)",
    options=BoftOptions,
    peft_type="BOFT",
    default_learning_rate=5e-4,  # LoRA's; not tuned for BOFT (docs/defaults.md)
    wrap=wrap,
    save=save_peft,
    load=load_peft,
    saved_files=PEFT_FILES,
    merge=merge_peft,
    footprint=footprint,
    check_model=check_model,
)
