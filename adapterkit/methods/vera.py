"""VeRA (peft): one pair of random low-rank matrices, frozen and shared by every adapted layer; each layer
trains only two scaling vectors (d of size r, b of size out_features). The task head trains fully."""

from __future__ import annotations

from pydantic import Field

from .base import Footprint, Method, MethodOptions, WrapContext
from .conv1d import refuse_conv1d
from .lora import targeted_linears
from .peft_tuner import PEFT_FILES, load_peft, merge_peft, peft_model, save_peft


class VeraOptions(MethodOptions):
    r: int = Field(256, gt=0, le=65536, description="rank of the shared random projections")
    d_initial: float = Field(0.1, gt=0, description="initial value of the d vectors")
    dropout: float = Field(0.0, ge=0, lt=1)
    projection_prng_key: int = Field(0, ge=0, description="seed of the shared random projections")
    target_modules: list[str] | str = "all-linear"


def footprint(options: VeraOptions, shape) -> Footprint:
    """r + out_features per adapted linear (the shared projections are frozen buffers), + task head."""
    targeted = targeted_linears(options, shape)
    adapters = sum(options.r + o for _, _, o in targeted)
    return Footprint(adapters + shape.task_head_params, branch_out_features=sum(o for _, _, o in targeted))


def linears_but_heads(model) -> str:
    """"all-linear" without the task head and the output embeddings, as one regex of full module names (peft's
    VeraConfig has no ``exclude_modules``)."""
    import re

    import torch

    from ..anatomy import head_module_names

    heads = tuple(head_module_names(model))
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
             and module is not output and not any(name == h or name.startswith(h + ".") for h in heads)]
    return "|".join(re.escape(n) for n in names)


def wrap(model, options: VeraOptions, ctx: WrapContext):
    from peft import VeraConfig

    targets = linears_but_heads(model) if options.target_modules == "all-linear" else options.target_modules
    config = VeraConfig(task_type=ctx.peft_task_type, r=options.r, d_initial=options.d_initial,
                        vera_dropout=options.dropout, projection_prng_key=options.projection_prng_key,
                        save_projection=True,  # the adapter folder reloads without regenerating the projections
                        target_modules=targets)
    return peft_model(model, config)


METHOD = Method(
    name="vera",
    trains="per-layer scaling vectors around shared frozen random low-rank matrices (+ task head)",
    options=VeraOptions,
    peft_type="VERA",
    default_learning_rate=4e-3,  # VeRA trains vectors only: the paper's learning rates are ~10x LoRA's; not tuned here
    wrap=wrap,
    save=save_peft,
    load=load_peft,
    saved_files=PEFT_FILES,
    merge=merge_peft,
    footprint=footprint,
    check_model=lambda options, config, task: refuse_conv1d("vera", config),
)
