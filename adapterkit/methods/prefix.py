"""Prefix tuning (peft): trainable key/value prefixes in every attention layer; the model is frozen.

It injects ``past_key_values``, so it needs a model whose attention takes a cache, and it does not
combine with gradient checkpointing (peft #869).
"""

from __future__ import annotations

from pydantic import Field

from .base import Footprint, Method, MethodOptions, Needs, WrapContext
from .peft_tuner import PEFT_FILES, PROMPT_NO_MERGE, load_peft, load_peft_trainable, peft_model, save_peft


class PrefixOptions(MethodOptions):
    num_virtual_tokens: int = Field(20, gt=0, le=512)
    projection: bool = Field(False, description="reparameterise the prefix through an MLP (prefix_projection)")
    encoder_hidden_size: int = Field(512, gt=0)


def check_model(options: PrefixOptions, config, task: str) -> str | None:
    from .prompt_learning import check_prefix

    return check_prefix(config, task)


def footprint(options: PrefixOptions, shape) -> Footprint:
    """A key and a value prefix per layer: n x layers x 2 x hidden; with the projection, an n x hidden
    embedding and an MLP hidden -> e -> layers x 2 x hidden instead; + task head."""
    n, h, e, kv = options.num_virtual_tokens, shape.hidden, options.encoder_hidden_size, 2 * shape.layers * shape.hidden
    prefix = n * h + h * e + e + e * kv + kv if options.projection else n * kv
    return Footprint(prefix + shape.task_head_params, keeps_linear_inputs=False)


def wrap(model, options: PrefixOptions, ctx: WrapContext):
    from peft import PrefixTuningConfig

    from .prompt_learning import fill_sizes

    config = PrefixTuningConfig(task_type=ctx.peft_task_type, num_virtual_tokens=options.num_virtual_tokens,
                                prefix_projection=options.projection,
                                encoder_hidden_size=options.encoder_hidden_size)
    return peft_model(model, fill_sizes(config, model.config))


METHOD = Method(
    name="prefix",
    trains="key/value prefixes in every attention layer (+ task head)",
    options=PrefixOptions,
    peft_type="PREFIX_TUNING",
    default_learning_rate=1e-2,
    wrap=wrap,
    save=save_peft,
    load=load_peft,
    saved_files=PEFT_FILES,
    load_trainable=load_peft_trainable,
    can_disable=True,
    no_merge=PROMPT_NO_MERGE,
    needs=Needs(injects_past_key_values=True, padded_rows=True, shardable=False),
    check_model=check_model,
    footprint=footprint,
)
