"""``adapterkit.wrap(model, "lora", r=8)``: apply any registered method to a model you already have."""

from __future__ import annotations

from pydantic import ValidationError

from .errors import UserError

# transformers Auto-class family -> the peft task type the method should build for.
_TASK_TYPES = {"ForCausalLM": "CAUSAL_LM", "ForSequenceClassification": "SEQ_CLS",
               "ForTokenClassification": "TOKEN_CLS", "ForConditionalGeneration": "SEQ_2_SEQ_LM",
               "ForSeq2SeqLM": "SEQ_2_SEQ_LM"}


def peft_task_type(model) -> str:
    name = type(model).__name__
    for suffix, task_type in _TASK_TYPES.items():
        if name.endswith(suffix):
            return task_type
    return "FEATURE_EXTRACTION"


def wrap(model, method: str, *, gradient_checkpointing: bool = False, **options):
    """Wrap ``model`` with ``method`` and its options; returns the trainable model.

    Quantizing methods (qlora) expect a model already loaded with their quantization config.
    """
    from .methods import METHODS
    from .methods.base import WrapContext

    record = METHODS.get(method)
    try:
        opts = record.options(**options)
    except ValidationError as err:
        from .recipe import describe_validation_error

        raise UserError(f"{method}: {describe_validation_error(err)}") from None
    path = getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "")
    ctx = WrapContext(peft_task_type=peft_task_type(model), model_path=path,
                      gradient_checkpointing=gradient_checkpointing)
    return record.wrap(model, opts, ctx)
