"""What the peft prompt-learning methods (prompt, ptuning, prefix) share: their sizes read from the model's
config, and the rules, checked in preflight from the config alone, for models they cannot serve."""

from __future__ import annotations

# peft reads hidden_size / n_embd / d_model, num_hidden_layers / num_layers / n_layer and num_attention_heads /
# n_head / num_heads; the names below also cover configs that call them otherwise (DistilBERT: dim, n_layers,
# n_heads).
SIZE_NAMES = {
    "token_dim": ("hidden_size", "n_embd", "d_model", "dim"),
    "num_layers": ("num_hidden_layers", "num_layers", "n_layer", "n_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
}
# Key/value head counts under names peft does not read (it reads num_key_value_heads): peft then sizes a prefix
# for every query head and the model's cache does not fit it (Falcon's multi-query attention).
OTHER_KV_HEAD_NAMES = ("multi_query", "num_kv_heads", "n_head_kv")


def _text(config):
    return getattr(config, "text_config", None) or config


def sizes(config) -> dict[str, int]:
    """peft's size fields that this config lets us read; missing ones are left out."""
    text, found = _text(config), {}
    for field, names in SIZE_NAMES.items():
        value = next((getattr(text, n) for n in names if isinstance(getattr(text, n, None), int)), None)
        if value:
            found[field] = value
    return found


def fill_sizes(peft_config, model_config):
    """Set the sizes peft would fail to find (``Please specify token_dim``) from ``SIZE_NAMES``; peft's own
    reading (GQA prefixes from num_key_value_heads) still applies where it finds its names."""
    text = _text(model_config).to_dict()
    for field, names in SIZE_NAMES.items():
        if getattr(peft_config, field, None) is None and not any(n in text for n in names[:3]):
            value = sizes(model_config).get(field)
            if value:
                setattr(peft_config, field, value)
    return peft_config


# Tasks that train an encoder-decoder as a sequence-to-sequence LM (peft task type SEQ_2_SEQ_LM), which peft's
# prompt learning serves: its PeftModelForSeq2SeqLM prepends the virtual tokens to the encoder input.
ENCODER_DECODER_TASKS = ("seq2seq",)


def check(config, method_name: str, task_name: str = "") -> str | None:
    """Rules every prompt-learning method shares: readable sizes; an encoder-decoder only as a seq2seq LM
    (peft's ``PeftModelForSeq2SeqLM`` prepends the virtual tokens to the encoder input; for classification
    peft prepends them through ``inputs_embeds``, which T5's and BART's classifiers refuse, and they locate
    the sentence by the eos token in ``input_ids``)."""
    missing = [field for field in SIZE_NAMES if field not in sizes(config)]
    if missing:
        return (f"{method_name} cannot size virtual tokens for model type {config.model_type!r} (its config "
                f"lacks {', '.join(missing)}); try 'lora'")
    if getattr(config, "is_encoder_decoder", False) and task_name not in ENCODER_DECODER_TASKS:
        return (f"{method_name} supports encoder-decoder models ({config.model_type!r}) only in task 'seq2seq': "
                "peft prepends virtual tokens through inputs_embeds, which their task heads do not take; try 'lora'")
    return None


def check_prefix(config, task_name: str = "") -> str | None:
    """Prefix tuning also needs a backbone that takes ``past_key_values`` and key/value heads peft can count."""
    import inspect

    import transformers

    reason = check(config, "prefix tuning", task_name)
    if reason:
        return reason
    backbone = transformers.AutoModel._model_mapping.get(type(config), None) if not getattr(config, "auto_map", None) else None
    if backbone is not None and "past_key_values" not in inspect.signature(backbone.forward).parameters:
        return (f"prefix tuning needs a model that takes past_key_values; {backbone.__name__} does not; "
                "try 'prompt' or 'lora'")
    text = _text(config).to_dict()
    other = [n for n in OTHER_KV_HEAD_NAMES if text.get(n)]
    if other and "num_key_value_heads" not in text:
        return (f"prefix tuning cannot size key/value prefixes for model type {config.model_type!r}: its config "
                f"counts key/value heads as {other[0]}, which peft does not read; try 'prompt' or 'lora'")
    return None
