"""P-tuning (peft): virtual tokens produced by a small prompt encoder (MLP or LSTM); the model is frozen."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Method, MethodOptions, WrapContext
from .peft_io import load_peft, peft_model, save_peft


class PTuningOptions(MethodOptions):
    num_virtual_tokens: int = Field(20, gt=0, le=512)
    encoder_hidden_size: int = Field(128, gt=0)
    encoder_type: Literal["MLP", "LSTM"] = "MLP"


def wrap(model, options: PTuningOptions, ctx: WrapContext):
    from peft import PromptEncoderConfig

    config = PromptEncoderConfig(task_type=ctx.peft_task_type, num_virtual_tokens=options.num_virtual_tokens,
                                 encoder_hidden_size=options.encoder_hidden_size,
                                 encoder_reparameterization_type=options.encoder_type)
    return peft_model(model, config)


METHOD = Method(
    name="ptuning",
    trains="a prompt encoder that produces virtual input tokens (+ task head)",
    options=PTuningOptions,
    default_learning_rate=3e-3,
    wrap=wrap,
    save=save_peft,
    load=load_peft,
)
