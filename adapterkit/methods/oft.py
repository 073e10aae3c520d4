"""OFT (peft): each adapted linear's weight is multiplied by a learned orthogonal, block-diagonal matrix
(blocks of ``block_size``, Cayley-parametrised), which keeps the angles between its neurons; the task head
trains fully."""

from __future__ import annotations

import math

from pydantic import Field

from .base import Footprint, Method, MethodOptions, WrapContext
from .conv1d import refuse_conv1d
from .lora import targeted_linears
from .peft_tuner import PEFT_FILES, load_peft, merge_peft, peft_model, save_peft


class OftOptions(MethodOptions):
    block_size: int = Field(32, gt=1, le=4096, description="size of each orthogonal block (divides in_features)")
    block_share: bool = Field(False, description="one block shared along the diagonal")
    coft: bool = Field(False, description="constrained OFT: keep the rotation within eps of the identity")
    eps: float = Field(6e-5, gt=0)
    module_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


def footprint(options: OftOptions, shape) -> Footprint:
    """One skew-symmetric block of b(b-1)/2 parameters per b input features (one in all with block_share)."""
    b = options.block_size
    targeted = targeted_linears(options, shape)
    blocks = sum(1 if options.block_share else max(i // b, 1) for _, i, _ in targeted)
    return Footprint(blocks * b * (b - 1) // 2 + shape.task_head_params)


def check_shape(options: OftOptions, shape) -> str | None:
    """peft silently shrinks a block size that does not divide a layer's in_features (with a warning): the run
    would train other blocks than the recipe says and the plan counted."""
    b = options.block_size
    sizes = {i for _, i, _ in targeted_linears(options, shape)}
    bad = sorted(i for i in sizes if i % b)
    if not bad:
        return None
    common = math.gcd(*sizes)
    fits = [d for d in range(min(b, common), 1, -1) if common % d == 0]
    advice = f"e.g. {fits[0]}, which divides them all" if fits else "or narrow method.target_modules"
    return (f"method.block_size = {b} does not divide the in_features {', '.join(map(str, bad))} of targeted layers "
            f"(peft would change it); choose a block size that divides them, {advice}")


def wrap(model, options: OftOptions, ctx: WrapContext):
    from peft import OFTConfig

    config = OFTConfig(task_type=ctx.peft_task_type, r=0, oft_block_size=options.block_size,
                       block_share=options.block_share, coft=options.coft, eps=options.eps,
                       module_dropout=options.module_dropout, target_modules=options.target_modules)
    return peft_model(model, config)


METHOD = Method(
    name="oft",
    trains="orthogonal block-diagonal rotations of linear layers' weights (+ task head)",
    options=OftOptions,
    peft_type="OFT",
    default_learning_rate=5e-4,  # LoRA's; not tuned for OFT (docs/defaults.md)
    wrap=wrap,
    save=save_peft,
    load=load_peft,
    saved_files=PEFT_FILES,
    merge=merge_peft,
    footprint=footprint,
    check_shape=check_shape,
    check_model=lambda options, config, task: refuse_conv1d("oft", config),
)
