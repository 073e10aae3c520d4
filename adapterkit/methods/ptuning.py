"""P-tuning (peft): virtual tokens produced by a small prompt encoder (MLP or LSTM); the model is frozen."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Footprint, Method, MethodOptions, Needs, WrapContext
from .peft_tuner import PEFT_FILES, PROMPT_NO_MERGE, load_peft, load_peft_trainable, peft_model, save_peft


class PTuningOptions(MethodOptions):
    num_virtual_tokens: int = Field(20, gt=0, le=512)
    encoder_hidden_size: int = Field(128, gt=0)
    encoder_type: Literal["MLP", "LSTM"] = "MLP"


def check_model(options, config, task: str) -> str | None:
    from .prompt_learning import check

    return check(config, "p-tuning", task)


def wrap(model, options: PTuningOptions, ctx: WrapContext):
    from peft import PromptEncoderConfig

    from .prompt_learning import fill_sizes

    config = PromptEncoderConfig(task_type=ctx.peft_task_type, num_virtual_tokens=options.num_virtual_tokens,
                                 encoder_hidden_size=options.encoder_hidden_size,
                                 encoder_reparameterization_type=options.encoder_type)
    return peft_model(model, fill_sizes(config, model.config))


def footprint(options: PTuningOptions, shape) -> Footprint:
    """Virtual-token embeddings + peft's prompt encoder: MLP h->e->e->h, or a 2-layer bi-LSTM (e per
    direction) followed by that MLP; + task head. Every sequence grows by the virtual tokens."""
    n, h, e = options.num_virtual_tokens, shape.hidden, options.encoder_hidden_size
    encoder = h * e + e * e + e * h + 2 * e + h
    if options.encoder_type == "LSTM":
        encoder += 2 * 4 * (e * (h + e) + e * (2 * e + e)) + 16 * e
    return Footprint(n * h + encoder + shape.task_head_params, extra_tokens=n, keeps_linear_inputs=False)


METHOD = Method(
    name="ptuning",
    trains="a prompt encoder that produces virtual input tokens (+ task head)",
    options=PTuningOptions,
    peft_type="P_TUNING",
    default_learning_rate=3e-3,
    wrap=wrap,
    save=save_peft,
    load=load_peft,
    saved_files=PEFT_FILES,
    load_trainable=load_peft_trainable,
    can_disable=True,
    no_merge=PROMPT_NO_MERGE,
    footprint=footprint,
    check_model=check_model,
    needs=Needs(padded_rows=True, shardable=False),
)
