"""Prompt tuning (peft): trainable soft-prompt embeddings prepended to the input; the model is frozen.

``init = "text"`` starts the soft prompt from the embeddings of ``init_text`` (Lester et al. 2021),
which makes the method much less sensitive to its (high) learning rate. ``init = "vocab"`` starts it from
the embeddings of randomly drawn vocabulary tokens (peft's SAMPLE_VOCAB): the scale of real embeddings
(~0.05 for MiniLM) without a text to write; it is the default. ``random`` is peft's default,
``nn.Embedding``'s N(0, 1), ~20x the scale of the embeddings it sits beside, and unstable at one epoch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Footprint, Method, MethodOptions, Needs, WrapContext
from .peft_tuner import PEFT_FILES, PROMPT_NO_MERGE, load_peft, load_peft_trainable, peft_model, save_peft


class PromptOptions(MethodOptions):
    num_virtual_tokens: int = Field(20, gt=0, le=512)
    init: Literal["random", "text", "vocab"] = Field(
        "vocab", description="vocab: embeddings of random vocabulary tokens (sentiment, 2 seeds: 0.697 +- 0.024 vs "
                             "random's 0.618 +- 0.145, docs/defaults.md); text: of init_text; random: N(0, 1)")
    init_text: str | None = None

    @model_validator(mode="after")
    def _text_needs_text(self):
        if self.init == "text" and not self.init_text:
            raise ValueError("init = 'text' needs init_text")
        return self


def check_model(options, config, task: str) -> str | None:
    from .prompt_learning import check

    return check(config, "prompt tuning", task)


def wrap(model, options: PromptOptions, ctx: WrapContext):
    from peft import PromptTuningConfig, PromptTuningInit

    from .prompt_learning import fill_sizes

    kwargs = {}
    if options.init == "text":
        kwargs = {"prompt_tuning_init": PromptTuningInit.TEXT, "prompt_tuning_init_text": options.init_text,
                  "tokenizer_name_or_path": ctx.model_path}
    elif options.init == "vocab":
        kwargs = {"prompt_tuning_init": PromptTuningInit.SAMPLE_VOCAB}
    config = PromptTuningConfig(task_type=ctx.peft_task_type, num_virtual_tokens=options.num_virtual_tokens, **kwargs)
    return peft_model(model, fill_sizes(config, model.config))


def footprint(options: PromptOptions, shape) -> Footprint:
    """num_virtual_tokens x hidden soft-prompt embeddings (+ task head); every sequence grows by them."""
    n = options.num_virtual_tokens
    return Footprint(n * shape.hidden + shape.task_head_params, extra_tokens=n, keeps_linear_inputs=False)


METHOD = Method(
    name="prompt",
    trains="soft-prompt embeddings prepended to the input (+ task head)",
    options=PromptOptions,
    peft_type="PROMPT_TUNING",
    default_learning_rate=3e-2,
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
