"""``adapterkit.wrap(model, "lora", r=8)``: apply any registered method to a model you already have."""

from __future__ import annotations

from pydantic import ValidationError

from .errors import UserError

# transformers' own Auto-class mappings (model type -> head class name) -> the peft task type to build for.
_TASK_TYPES = {"MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": "CAUSAL_LM",
               "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES": "SEQ_2_SEQ_LM",
               "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES": "SEQ_CLS",
               "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES": "TOKEN_CLS",
               "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES": "QUESTION_ANS"}


def peft_task_type(model) -> str:
    """The peft task type of ``model``'s head, looked up in transformers' Auto-class mappings (so
    ``GPT2LMHeadModel`` and ``BertLMHeadModel`` are causal LMs); a bare backbone is FEATURE_EXTRACTION."""
    from transformers.models.auto import modeling_auto

    name = type(model).__name__
    for mapping, task_type in _TASK_TYPES.items():
        for classes in getattr(modeling_auto, mapping, {}).values():
            if name in ((classes,) if isinstance(classes, str) else classes):
                return task_type
    return "FEATURE_EXTRACTION"


def wrap(model, method: str, *, gradient_checkpointing: bool = False, total_steps: int | None = None, **options):
    """Wrap ``model`` with ``method`` and its options; returns the trainable model, for your own Trainer or loop.

    It is the model ``adapterkit.run`` would train: trainable weights in fp32 (train a bf16/fp16 base under autocast,
    as the Trainer's ``bf16=True`` does), ``gradient_checkpointing`` turned on as the Trainer turns it on (refused for
    prefix tuning). ``total_steps``: the optimizer steps you will train, needed by methods that schedule over them
    (adalora, whose loop must call ``model.base_model.update_and_allocate(step)`` after each ``optimizer.step()``,
    steps counted from 0, before ``zero_grad()``). What only a run applies is refused with how to get it (LoRA+'s
    ``loraplus_lr_ratio``: an optimizer; ``init="eva"``: training data). ``adapterkit.save(model, folder)`` and
    ``adapterkit.load(base_model, folder)`` save and reload it, for every method (``save_pretrained`` does not
    carry bottleneck adapters). Quantizing methods (qlora) expect a model already loaded with their quantization
    config. The model, the method name and the method's rules for the model are checked first (``wrap_checks``),
    then the options (``wrapped.check``): each refusal is a one-line UserError, before the model is touched.
    """
    from .methods import METHODS
    from .methods.base import WrapContext
    from .wrap_checks import check_model_argument, method_name, refuse_unsuitable, remember_wrapped
    from .wrapped import check, finish

    check_model_argument(model)
    record = METHODS.get(method_name(method), ignore_case=True)
    try:
        opts = record.options(**options)
    except ValidationError as err:
        from .recipe import describe_validation_error

        raise UserError(f"{method}: {describe_validation_error(err)}") from None
    refuse_unsuitable(model, record, opts, peft_task_type(model))
    path = getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "")
    ctx = WrapContext(peft_task_type=peft_task_type(model), model_path=path,
                      gradient_checkpointing=gradient_checkpointing, total_steps=total_steps)
    check(record, opts, ctx, model)  # options wrap could not apply are refused before the model is touched
    return remember_wrapped(model, finish(record.wrap(model, opts, ctx), record, ctx))
