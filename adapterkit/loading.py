"""The only place that calls ``from_pretrained`` for base models and builds ``BitsAndBytesConfig``.

Safetensors only unless the recipe sets ``model.allow_pickle``; remote code only if it sets
``model.trust_remote_code``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .assets import resolve_model
from .errors import UserError


def model_path(model_section, source: str | None = None) -> str:
    try:
        return resolve_model(model_section.name)
    except UserError as err:
        if source is None or err.where:
            raise
        raise UserError(str(err), where=f"{source}: model.name") from None


def _common_kwargs(model_section) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"trust_remote_code": model_section.trust_remote_code}
    if model_section.revision:
        kwargs["revision"] = model_section.revision
    return kwargs


def _hub_error(model_section, source: str, err: Exception) -> UserError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if "trust_remote_code" in str(err):
        return UserError(f"model {model_section.name!r} needs its own code to run, which adapterkit does not do "
                         "unless told to; set model.trust_remote_code = true if you trust it",
                         where=f"{source}: model.trust_remote_code")
    return UserError(f"cannot load model {model_section.name!r}: {first}", where=f"{source}: model.name")


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def _refuse_lfs_pointers(folder, model_section, source: str) -> None:
    """A clone made without ``git lfs pull`` holds small text pointers where the weights should be."""
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin", ".json", ".model", ".gguf") and path.is_file() \
                and path.stat().st_size < 1024 and path.read_bytes().startswith(LFS_POINTER):
            raise UserError(f"{path.name} in {str(folder)!r} is a Git LFS pointer, not the file itself (the folder "
                            f"was cloned without its LFS content); run `git lfs pull` in it, or download it again",
                            where=f"{source}: model.name")


def _pickle_refused(model_section, source: str) -> UserError:
    return UserError(f"model {model_section.name!r} has no safetensors weights, only pickle (.bin) files, which can "
                     "run code when loaded; set model.allow_pickle = true if you trust them",
                     where=f"{source}: model.allow_pickle")


def load_config(model_section, source: str):
    """The model's config; for a local folder, also refuses pickle-only weights unless allowed (before any load)."""
    from pathlib import Path

    from transformers import AutoConfig

    path = model_path(model_section, source)
    folder = Path(path)
    if folder.is_dir():
        _refuse_lfs_pointers(folder, model_section, source)
    if not model_section.allow_pickle and folder.is_dir() and not any(folder.glob("*.safetensors")) \
            and any(folder.glob("*.bin")):
        raise _pickle_refused(model_section, source)
    try:
        return AutoConfig.from_pretrained(path, **_common_kwargs(model_section))
    except (OSError, ValueError) as err:
        raise _hub_error(model_section, source, err) from None


def load_tokenizer(model_section, source: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path(model_section, source), **_common_kwargs(model_section))
    except (OSError, ValueError) as err:
        raise _hub_error(model_section, source, err) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def torch_dtype(precision: str, default=None):
    """``bf16``/``fp16`` -> the torch dtype; anything else (fp32) -> ``default``."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, default)


def quantization_config(plan, auto_class: str | None = None, config=None) -> Any:
    """The method's BitsAndBytesConfig; the task head and the output embeddings (read from the model's own
    structure on the meta device) stay out of 4-bit: they train whole or hold the vocabulary projection."""
    if plan.method.quantization is None:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    from .anatomy import full_precision_module_names, meta_model

    kwargs = plan.method.quantization(plan.method_options)
    compute = torch_dtype(plan.hardware.precision, torch.float32)
    kwargs.setdefault("bnb_4bit_compute_dtype", compute)
    config = config if config is not None else load_config(plan.recipe.model, plan.where)
    structure = meta_model(config, auto_class or plan.task.auto_class, plan.recipe.model.trust_remote_code)
    kwargs.setdefault("llm_int8_skip_modules", full_precision_module_names(structure))
    return BitsAndBytesConfig(**kwargs)


def dropout_overrides(config, probability: float) -> dict[str, float]:
    """Config keys that hold a dropout probability (``hidden_dropout_prob``, ``attention_dropout``,
    ``attn_pdrop``, ``classifier_dropout``...), each set to ``probability``; passed to ``from_pretrained``."""
    return {key: probability for key, value in config.to_dict().items()
            if ("dropout" in key or key.endswith("_pdrop")) and isinstance(value, float)}


def weights_dtype(method, hardware) -> str:
    """The dtype base weights are loaded in (the memory planner reads this too).

    fp32 when the method trains base weights (full, freeze: fp32 master weights, autocast does the bf16/fp16
    math) and when it quantizes (``prepare_model_for_kbit_training`` keeps the non-quantized rest in fp32);
    a frozen base is stored in the compute dtype (bf16/fp16), on CPU as on CUDA. Under autocast an fp32 frozen
    weight is re-cast on every forward pass and its bf16 copy is kept for backward (autocast caches only leaf
    weights that require grad), so fp32 storage cost a cast per pass and a bf16 copy of the model on top of
    the fp32 one; stored in bf16 the cast is a no-op. Trainable weights (adapters, task heads) stay fp32
    (``training.trainable_in_fp32``), and so does AdamW's state.
    """
    if method.trains_base or method.quantization is not None:
        return "fp32"
    return hardware.precision


def refuse_missing_weights(model, missing, plan) -> None:
    """A weight the checkpoint lacks is drawn at random at every load, so nothing saved could reproduce the
    model; only the fresh task head (``anatomy.head_module_names``: trained and saved whole) may be missing."""
    backbone = sorted(k for k in missing if not k.startswith(_head_prefixes(model)))
    if backbone:
        raise UserError(f"model {plan.recipe.model.name!r} loaded as {type(model).__name__} lacks {len(backbone)} "
                        f"weights the task needs ({', '.join(backbone[:3])}{', ...' if len(backbone) > 3 else ''}); "
                        "they would be drawn at random at every load", where=f"{plan.where}: model.name")


def _head_prefixes(model) -> tuple[str, ...]:
    from .anatomy import head_module_names

    return tuple(h + "." for h in head_module_names(model))


class _HeadReportHeld(logging.Filter):
    """While a base model loads: transformers' load report held back, and dropped when all it says is that the
    task head is "MISSING ... newly initialized": adapterkit's own plan for it (a run trains it and says so, a
    reopened run's artifact puts the trained head back right after, zero-shot evaluates it fresh as chance
    level); any other finding (other missing, unexpected or mismatched weights), or a failed load, lets the
    report through whole. Other records pass untouched."""

    LOGGER = "transformers.modeling_utils"

    def __init__(self):
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in str(record.msg):
            self.held.append(record)
            return False
        return True

    def __enter__(self):
        logging.getLogger(self.LOGGER).addFilter(self)
        return self

    def __exit__(self, kind, *_):
        logging.getLogger(self.LOGGER).removeFilter(self)
        if kind is not None:
            self.release()

    def release(self, model=None, info: dict | None = None) -> None:
        if model is not None and _only_head_missing(model, info or {}):
            self.held.clear()
        for record in self.held:
            logging.getLogger(self.LOGGER).handle(record)
        self.held.clear()


def _only_head_missing(model, info: dict) -> bool:
    missing = info.get("missing_keys") or ()
    heads = _head_prefixes(model)
    return (bool(missing) and bool(heads) and all(k.startswith(heads) for k in missing)
            and not info.get("unexpected_keys") and not info.get("mismatched_keys") and not info.get("error_msgs"))


def load_model(plan, tokenizer, extra_kwargs: dict[str, Any] | None = None, auto_class: str | None = None,
               quantize: bool = True, config=None, training: bool = True):
    """The task's Auto class (or ``auto_class``) in ``weights_dtype`` (not the checkpoint's own dtype),
    quantized if the method says so (and ``quantize``; False: the original weights, fp32, for export).
    ``config``: the model's config when the caller has it (the preflight read it); else read here if needed.
    ``training=False`` (a finished run reopened to evaluate, serve, generate or export) keeps a CPU's base in fp32:
    outside the Trainer nothing autocasts, and the run's fp32 task head and adapters then meet fp32 inputs.
    transformers' report that the task head alone is missing (newly initialized) is not printed
    (``_HeadReportHeld``)."""
    import pickle

    import torch
    import transformers

    auto = getattr(transformers, auto_class or plan.task.auto_class)
    kwargs = {**_common_kwargs(plan.recipe.model), **(extra_kwargs or {})}
    needs_config = plan.recipe.model.dropout is not None or (quantize and plan.method.quantization is not None)
    if config is None and needs_config:
        config = load_config(plan.recipe.model, plan.where)
    if plan.recipe.model.dropout is not None:
        kwargs.update(dropout_overrides(config, plan.recipe.model.dropout))
    kwargs["use_safetensors"] = None if plan.recipe.model.allow_pickle else True
    stored = weights_dtype(plan.method, plan.hardware) if training or plan.hardware.device == "cuda" else "fp32"
    kwargs.setdefault("dtype", torch_dtype(stored, torch.float32) if quantize else torch.float32)
    quant = quantization_config(plan, auto_class, config) if quantize else None
    if quant is not None:
        kwargs["quantization_config"] = quant
        if plan.hardware.device == "cuda" and plan.hardware.strategy != "fsdp":  # FSDP loads on CPU, then shards
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}  # this rank's GPU
    held = _HeadReportHeld()
    try:
        with held:
            model, info = auto.from_pretrained(model_path(plan.recipe.model, plan.where), output_loading_info=True,
                                               **kwargs)
    except pickle.UnpicklingError:  # allow_pickle, and torch's weights-only loader found more than tensors
        raise UserError(f"refused the pickle weights of {plan.recipe.model.name!r}: they hold objects other than "
                        "tensors, which could run code (torch's weights-only loader stopped); do not use this "
                        "checkpoint", where=f"{plan.where}: model.allow_pickle") from None
    except (OSError, ValueError) as err:
        if not plan.recipe.model.allow_pickle and "safetensors" in str(err):
            raise _pickle_refused(plan.recipe.model, plan.where) from None
        raise _hub_error(plan.recipe.model, plan.where, err) from None
    held.release(model, info)
    refuse_missing_weights(model, info.get("missing_keys", ()), plan)
    if tokenizer.pad_token_id is not None and getattr(model.config, "pad_token_id", None) != tokenizer.pad_token_id:
        # The tokenizer pads, so the model must know its pad id (sequence classifiers pool at the last non-pad
        # token). transformers' Trainer aligns this itself when it trains, so without it here a reopened run
        # (adapterkit eval, serve, export) pooled elsewhere than the run's own evaluation did.
        model.config.pad_token_id = tokenizer.pad_token_id
    return model
