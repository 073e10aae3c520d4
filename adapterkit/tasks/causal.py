"""Which models the causal-LM tasks (``lm``, ``chat``, ``preference``) accept: decoders, in preflight.

transformers gives encoders a causal-LM class too (BertLMHeadModel, RobertaForCausalLM, ElectraForCausalLM, ...),
and BART a decoder-only one; loaded from an encoder's checkpoint the first attends both ways, so every position
reads the tokens it is to predict and the loss means nothing; the second drops the checkpoint's shared embeddings.
"""

from __future__ import annotations


def bidirectional_encoder(config) -> bool:
    """An encoder behind a causal-LM class: its model type has a masked-LM class as well as a causal-LM one in
    transformers' Auto mappings (bert, roberta, electra, xlm-roberta, camembert, ...; bart, mbart and mvp too,
    which are encoder-decoders), and the checkpoint was not trained as a decoder: ``config.is_decoder`` (which
    their causal-LM classes read to mask later tokens) is off, and so is XLM's ``config.causal``."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = getattr(config, "model_type", None)
    if kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return False
    return not (getattr(config, "is_decoder", False) or getattr(config, "causal", False))


def decoder_only_reason(task: str, config, encoder_decoder: str = "") -> str | None:
    """Why a causal-LM task refuses this model (None: a decoder). ``encoder_decoder``: the task's tail to the
    encoder-decoder refusal."""
    kind = getattr(config, "model_type", None)
    if getattr(config, "is_encoder_decoder", False):
        return f"task {task!r} needs a decoder-only causal LM; model type {kind!r} is an encoder-decoder{encoder_decoder}"
    if bidirectional_encoder(config):
        return (f"task {task!r} needs a decoder-only causal LM; model type {kind!r} is an encoder that attends both "
                "ways (every token would see the ones it is to predict); only a checkpoint trained as a decoder "
                "(config.is_decoder = true) is accepted")
    return None
