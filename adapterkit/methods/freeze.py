"""Layer freezing: only the top N transformer blocks (+ the final norm and the task head) train.

The top is where the head reads (``anatomy.top_stack``): on an encoder-decoder (T5, BART) the decoder's last N
blocks and its final norm, for seq2seq and classification alike (their classification heads read the decoder's
output); the encoder stays frozen.
"""

from __future__ import annotations

from pydantic import Field

from ..errors import UserError
from .base import Footprint, Method, MethodOptions, WrapContext
from .full import MODEL_FILES, load_model, merge_model, save_model


class FreezeOptions(MethodOptions):
    top_layers: int = Field(2, gt=0, description="how many of the last transformer blocks train")
    train_head: bool = True


def wrap(model, options: FreezeOptions, ctx: WrapContext):
    from ..anatomy import head_module_names, top_stack

    _, blocks, norms = top_stack(model)
    if (reason := _too_many(options, len(blocks))) is not None:
        raise UserError(reason)
    for p in model.parameters():
        p.requires_grad_(False)
    for block in list(blocks)[-options.top_layers:]:
        block.requires_grad_(True)
    for name in norms:  # the final norm (LlamaModel.norm, GPT2Model.ln_f, T5Stack.final_layer_norm) tops the stack
        model.get_submodule(name).requires_grad_(True)
    if options.train_head:
        for name in head_module_names(model):
            model.get_submodule(name).requires_grad_(True)
    return model


def _too_many(options: FreezeOptions, blocks: int) -> str | None:
    if options.top_layers > blocks:
        return (f"method.top_layers = {options.top_layers}, but the model has {blocks} blocks where its head reads; "
                f"at most {blocks} (that many trains them all: or use method 'full')")
    return None


def footprint(options: FreezeOptions, shape) -> Footprint:
    """The top blocks + the final norm + the task head (an LM's head is tied or frozen: not counted)."""
    head = shape.task_head_params if options.train_head else 0
    return Footprint(sum(shape.top_block_params[-options.top_layers:]) + shape.top_norm_params + head)


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
    check_shape=lambda options, shape: _too_many(options, len(shape.top_block_params)),
)
