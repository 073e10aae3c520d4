"""What ``adapterkit.wrap`` checks of its arguments before any method touches the model: a model object wrap can
read (a transformers PreTrainedModel), a method name, a model that carries no adapter yet, the method's packages and
quantization, and the method's own ``check_model`` (the rules preflight applies to a run's model config).

Each refusal is a one-line ``UserError`` naming what was passed and what to do instead."""

from __future__ import annotations

import importlib.util
import weakref
from typing import Any

from .errors import UserError

# peft task type of the model's head -> the task whose rules a method's check_model applies (preflight passes the
# recipe's task; chat and lm share one). Other heads (bare backbones, question answering) have no task: "".
TASK_NAMES = {"CAUSAL_LM": "chat", "SEQ_CLS": "classification", "TOKEN_CLS": "ner", "SEQ_2_SEQ_LM": "seq2seq"}
AGAIN = ("load a fresh base model to wrap (from_pretrained); to continue training a saved adapter, use the recipe "
         "key model.adapter; for several adapters on one model, use peft's add_adapter")
# base model -> weak reference to the peft model wrap made of it, where peft records no config in the base (prompt
# learning): wrapping that base again would change the first wrapped model under its feet.
_WRAPPED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def method_name(method: Any) -> str:
    """``method`` must be a method's name (a string; case is resolved by the registry lookup)."""
    if isinstance(method, str):
        return method
    from .methods import METHODS

    raise UserError(f"wrap's method must be a method name such as 'lora', got {_described(method)} "
                    f"(known: {', '.join(METHODS.names())})")


def check_model_argument(model: Any) -> None:
    """``model`` must be a loaded transformers model carrying no adapter (a PeftModel is refused as one)."""
    if isinstance(model, str):
        raise UserError(f"wrap needs a loaded transformers model, got the name {model!r}: load it first, e.g. "
                        f"AutoModelForCausalLM.from_pretrained({model!r}), and pass the model")
    carried = carried_adapter(model)
    if carried:
        raise UserError(f"the model already carries an adapter: {carried}; wrapping it again would nest or replace "
                        f"it. Instead {AGAIN}")
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        raise UserError(f"wrap needs a transformers PreTrainedModel instance (it reads the model's config and head), "
                        f"got {_described(model)}; load one with from_pretrained, e.g. "
                        "AutoModelForCausalLM.from_pretrained(name)")


def method_refusal(model, record, options, peft_task_type: str) -> str | None:
    """Why ``record`` (with its validated ``options``) cannot wrap ``model``, in one line, or None: a package it
    needs is missing, it quantizes and the model is not loaded 4-bit, or its ``check_model`` refuses the config."""
    from .methods.base import missing_package

    reason = missing_package(record)
    if reason:
        return reason
    if record.quantization is not None and not _loaded_in_4bit(model):
        kwargs = ", ".join(f"{k}={v!r}" for k, v in record.quantization(options).items())
        return (f"method {record.name!r} needs a model loaded 4-bit quantized (bitsandbytes Linear4bit layers); this "
                f"one is not: load it with from_pretrained(name, quantization_config=BitsAndBytesConfig({kwargs})), "
                "or use 'lora' on an unquantized model")
    if record.check_model is not None:
        return record.check_model(options, model.config, TASK_NAMES.get(peft_task_type, ""))
    return None


def refuse_unsuitable(model, record, options, peft_task_type: str) -> None:
    """``method_refusal``'s reason as a UserError."""
    reason = method_refusal(model, record, options, peft_task_type)
    if reason:
        raise UserError(reason)


def remember_wrapped(model, wrapped):
    """After wrapping, returns ``wrapped``. Where it is a new object and peft recorded no config in ``model`` (its
    prompt learning: on an LM head no trace is left in the base at all), it is remembered, so wrapping ``model``
    again is refused, naming the method, while it lives."""
    if wrapped is not model and not isinstance(getattr(model, "peft_config", None), dict):
        _WRAPPED[model] = weakref.ref(wrapped)
    return wrapped


def carried_adapter(model: Any) -> str | None:
    """What adapter ``model`` carries, in a few words (a PeftModel; peft tuner layers or modules_to_save wrappers;
    adapterkit's bottleneck adapters; the base of a live prompt-learning model that wrap made), or None."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return None
    from peft import PeftMixedModel, PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    from .methods.bottleneck import inserted_adapter

    if isinstance(model, (PeftModel, PeftMixedModel)):
        return f"it is a {type(model).__name__} with {_peft_adapters(model)}"
    wrapper = _WRAPPED.get(model)
    wrapper = wrapper() if wrapper is not None else None
    if wrapper is not None and wrapper.get_base_model() is model:
        return f"it is the base of a live {type(wrapper).__name__} with {_peft_adapters(wrapper)}"
    for name, module in model.named_modules():
        if isinstance(module, (BaseTunerLayer, AuxiliaryTrainingWrapper)):
            kind = _peft_adapters(model) if isinstance(getattr(model, "peft_config", None), dict) else "a peft adapter"
            return f"{kind}, e.g. its {type(module).__name__} layer at {name}"
    inserted = inserted_adapter(model)
    return f"method 'bottleneck', e.g. its adapter at {inserted}" if inserted else None


def _peft_adapters(model) -> str:
    """peft's adapters on ``model``, by adapterkit method name (the first method whose ``peft_type`` it is):
    "method 'lora' as adapter 'default'"."""
    from .methods import METHODS

    by_type = {}
    for name in METHODS.names():
        by_type.setdefault(METHODS.get(name).peft_type, name)
    found = []
    for adapter, config in (getattr(model, "peft_config", None) or {}).items():
        kind = str(getattr(getattr(config, "peft_type", None), "value", "peft"))
        found.append(f"method {by_type.get(kind, kind.lower())!r} as adapter {adapter!r}")
    return ", ".join(found) or "a peft adapter"


def _loaded_in_4bit(model) -> bool:
    if importlib.util.find_spec("bitsandbytes") is None:
        return False
    import bitsandbytes as bnb

    return any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())


def _described(value: Any) -> str:
    """``None``, ``'text' (str)``, a tokenizer, or any other object by its type (``a torch.nn...Sequential``)."""
    if value is None:
        return "None"
    kind = type(value)
    if kind.__module__ == "builtins":
        return f"{value!r} ({kind.__name__})"
    if hasattr(value, "convert_tokens_to_ids"):
        return f"a tokenizer ({kind.__name__}); pass the model, not its tokenizer"
    return f"a {kind.__module__}.{kind.__qualname__}"
