"""Layer freezing: only the top N transformer blocks (+ the final norm and the task head) train."""

from __future__ import annotations

from pydantic import Field

from .base import Footprint, Method, MethodOptions, WrapContext
from .full import MODEL_FILES, load_model, merge_model, save_model


class FreezeOptions(MethodOptions):
    top_layers: int = Field(2, gt=0, description="how many of the last transformer blocks train")
    train_head: bool = True


def wrap(model, options: FreezeOptions, ctx: WrapContext):
    from ..anatomy import find_blocks, head_module_names

    for p in model.parameters():
        p.requires_grad_(False)
    block_path, blocks = find_blocks(model)
    for block in list(blocks)[-options.top_layers:]:
        block.requires_grad_(True)
    # A norm beside the block list (LlamaModel.norm, GPT2Model.ln_f) is the top of the stack: it trains.
    parent = model.get_submodule(block_path.rpartition(".")[0])
    for child in parent.children():
        if "Norm" in type(child).__name__:
            child.requires_grad_(True)
    if options.train_head:
        for name in head_module_names(model):
            model.get_submodule(name).requires_grad_(True)
    return model


def footprint(options: FreezeOptions, shape) -> Footprint:
    """The top blocks + the final norm + the task head (an LM's head is tied or frozen: not counted)."""
    head = shape.task_head_params if options.train_head else 0
    return Footprint(min(options.top_layers, shape.layers) * shape.block_params + shape.top_norm_params + head)


METHOD = Method(
    name="freeze",
    trains="the top N transformer blocks + final norm + task head",
    options=FreezeOptions,
    default_learning_rate=1e-4,
    wrap=wrap,
    save=save_model,
    load=load_model,
    merge=merge_model,
    artifact="model",
    saved_files=MODEL_FILES,
    trains_base=True,
    footprint=footprint,
)
