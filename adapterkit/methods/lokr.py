"""LoKr (peft, LyCORIS): the weight update is a Kronecker product W1 ⊗ W2 of two small factors (the larger one
low-rank when r is small against it), on the chosen linear layers; the task head trains fully."""

from __future__ import annotations

from pydantic import Field

from .base import Footprint, Method, MethodOptions, WrapContext
from .conv1d import refuse_conv1d
from .lora import targeted_linears
from .peft_tuner import PEFT_FILES, load_peft, merge_peft, peft_model, save_peft


class LokrOptions(MethodOptions):
    r: int = Field(8, gt=0, le=4096)
    alpha: float | None = Field(None, gt=0, description="default: r (scaling 1)")
    rank_dropout: float = Field(0.0, ge=0, lt=1)
    module_dropout: float = Field(0.0, ge=0, lt=1)
    decompose_both: bool = Field(False, description="also factor the left Kronecker factor into rank-r matrices")
    decompose_factor: int = Field(-1, ge=-1, description="Kronecker split of each dimension; -1: near its square root")
    target_modules: list[str] | str = "all-linear"


def _factors(options: LokrOptions, in_dim: int, out_dim: int) -> int:
    """Trainable parameters of one layer, as peft's LoKr layer shapes them (``peft.tuners.lokr.layer``)."""
    from peft.tuners.lokr.layer import factorization

    r = options.r
    in_m, in_n = factorization(in_dim, options.decompose_factor)
    out_l, out_k = factorization(out_dim, options.decompose_factor)
    full_w1 = not (options.decompose_both and r < max(out_l, in_m) / 2)
    full_w2 = not (r < max(out_k, in_n) / 2)
    w1 = out_l * in_m if full_w1 else r * (out_l + in_m)
    w2 = out_k * in_n if full_w2 else r * (out_k + in_n)
    return w1 + w2


def footprint(options: LokrOptions, shape) -> Footprint:
    targeted = targeted_linears(options, shape)
    adapters = sum(_factors(options, i, o) for _, i, o in targeted)
    return Footprint(adapters + shape.task_head_params, branch_out_features=sum(o for _, _, o in targeted))


def wrap(model, options: LokrOptions, ctx: WrapContext):
    from peft import LoKrConfig

    config = LoKrConfig(task_type=ctx.peft_task_type, r=options.r, alpha=options.alpha or options.r,
                        rank_dropout=options.rank_dropout, module_dropout=options.module_dropout,
                        decompose_both=options.decompose_both, decompose_factor=options.decompose_factor,
                        target_modules=options.target_modules)
    return peft_model(model, config)


METHOD = Method(
    name="lokr",
    trains="Kronecker-product updates on linear layers (+ task head)",
    options=LokrOptions,
    peft_type="LOKR",
    default_learning_rate=5e-4,  # LoRA's; not tuned for LoKr (docs/defaults.md)
    wrap=wrap,
    save=save_peft,
    load=load_peft,
    saved_files=PEFT_FILES,
    merge=merge_peft,
    footprint=footprint,
    check_model=lambda options, config, task: refuse_conv1d("lokr", config),
)
