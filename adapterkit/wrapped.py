"""What ``adapterkit.wrap`` does around a method's own ``wrap``, so that the model it returns trains as a run's does,
and ``adapterkit.save`` / ``adapterkit.load`` for such a model.

A run applies more than ``Method.wrap``: its Trainer turns gradient checkpointing on (``activation_checkpointing``),
``api.prepare_model`` keeps trainable weights in fp32, and the method's ``prepare_trainer`` builds its own optimizer
or adds a per-step callback. ``check`` refuses, before the model is touched, every option wrap could not apply (one
line saying how to get it); ``finish`` applies the rest to the wrapped model. A method's own ``save``/``load`` write
and read its artifact (a PEFT adapter folder, bottleneck's safetensors, a full model); ``save`` adds ``METHOD_FILE``
naming the method, so ``load`` needs only the folder and a fresh base model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .errors import UserError

log = logging.getLogger("adapterkit")

METHOD_FILE = "adapterkit_method.json"  # {"method": name}, beside the method's own files
MARKER = "adapterkit_method"  # attribute ``finish`` sets on the wrapped model: the method's name, read by ``save``


def check(record, options, ctx, model) -> None:
    """Refuse what ``wrap`` would accept but could not apply (``record``: the Method; ``options``: its validated
    options; ``ctx``: the WrapContext wrap built from its arguments)."""
    name = record.name
    if ctx.gradient_checkpointing:
        if record.needs.injects_past_key_values:  # the run's preflight refuses the same (plan.py)
            raise UserError(f"{name} injects past key/values, which gradient checkpointing cannot recompute (peft "
                            "#869); pass gradient_checkpointing=False", where="wrap")
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise UserError(f"{type(model).__name__} does not support gradient checkpointing (transformers' "
                            "supports_gradient_checkpointing); pass gradient_checkpointing=False", where="wrap")
    if ctx.total_steps is not None:
        if isinstance(ctx.total_steps, bool) or not isinstance(ctx.total_steps, int) or ctx.total_steps < 1:
            raise UserError(f"total_steps must be a positive whole number, not {ctx.total_steps!r}", where="wrap")
        if not record.needs.total_steps:
            raise UserError(f"{name} has no step schedule: total_steps would change nothing; leave it out",
                            where="wrap")
    elif record.needs.total_steps:
        raise UserError(f"{name} schedules over the optimizer steps: pass total_steps=N, the steps you will train "
                        "(adapterkit.run counts them itself)", where="wrap")
    reason = record.wrap_refusal(options) if record.wrap_refusal is not None else None
    if reason:
        raise UserError(f"{name}: {reason}", where="wrap")


def finish(model, record, ctx):
    """What a run does to the wrapped model beyond the method's ``wrap``: gradient checkpointing as the Trainer turns
    it on; trainable weights in fp32 (``api.prepare_model``); the method's name for ``save``."""
    from .methods.fused_lora_sum import fuse_lora_sums
    from .methods.input_casts import skip_input_casts_under_autocast

    if ctx.gradient_checkpointing:
        # the Trainer's call (``activation_checkpointing``): non-reentrant checkpoints, and gradients for the input
        # embeddings' output (``enable_input_require_grads``) so a frozen embedding still lets them flow to adapters
        model.activation_checkpointing_enable()
    _trainable_in_fp32(model, record)
    skip_input_casts_under_autocast(model)  # changes nothing outside autocast (methods/input_casts.py)
    fuse_lora_sums(model)  # the same numbers with two output-sized tensors fewer per LoRA layer (methods/fused_lora_sum.py)
    setattr(model, MARKER, record.name)
    return model


def _trainable_in_fp32(model, record) -> None:
    """Trainable weights in fp32 as a run keeps them. A method that trains base weights (full, freeze) gets the whole
    model in fp32, as a run loads it (``loading.weights_dtype``: fp32 master weights). Otherwise
    ``training.trainable_in_fp32``, as ``api.prepare_model`` calls it: a task head copied from a bf16/fp16 base
    (peft's modules_to_save) trains in fp32. A run trains such a base under autocast (the Trainer's bf16/fp16), a
    caller's own loop may not: each module whose weights were cast also gets its inputs in fp32 outside autocast."""
    import torch

    from .training import trainable_in_fp32

    low = (torch.bfloat16, torch.float16)
    if record.trains_base and record.quantization is None:
        if any(p.dtype in low for p in model.parameters()):
            log.warning("%s trains base weights: the model is now in fp32, as a run loads it (fp32 master weights; "
                        "autocast does the bf16/fp16 math)", record.name)
            model.to(torch.float32)
        return
    cast = [m for m in model.modules() if any(p.requires_grad and p.dtype in low for p in m.parameters(recurse=False))]
    trainable_in_fp32(model)
    for module in cast:
        module.register_forward_pre_hook(_inputs_in_fp32, with_kwargs=True)


def _inputs_in_fp32(module, args, kwargs):
    """Forward pre-hook: bf16/fp16 tensor inputs in fp32 outside autocast (under it, autocast's casts apply as in a
    run). A module-level function holding nothing, so the model stays deep-copyable."""
    import torch

    from .methods.input_casts import CAST_UNLESS_AUTOCAST

    if not CAST_UNLESS_AUTOCAST:  # autocast is on
        return None

    def fp32(value):
        low = isinstance(value, torch.Tensor) and value.dtype in (torch.bfloat16, torch.float16)
        return value.float() if low else value

    return tuple(fp32(a) for a in args), {k: fp32(v) for k, v in kwargs.items()}


def save(model, folder, method: str | None = None) -> Path:
    """Save the trained part of a model ``adapterkit.wrap`` returned into ``folder`` (created), in its method's own
    format (as a run's ``adapter/`` or ``model/``), with ``adapterkit_method.json`` naming the method for ``load``.
    ``method``: only for a model wrap did not return (e.g. one ``load`` returned). Returns the folder."""
    from .methods import METHODS

    name = method or getattr(model, MARKER, None)
    if name is None:
        raise UserError("this model did not come from adapterkit.wrap: pass method=NAME, the method that wrapped it",
                        where="save")
    record = METHODS.get(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record.save(model, folder)
    (folder / METHOD_FILE).write_text(json.dumps({"method": record.name}) + "\n", encoding="utf-8")
    return folder


def load(base_model, folder, *, trainable: bool = False):
    """The model ``save`` wrote into ``folder``, on ``base_model`` (a fresh copy of the base that was wrapped, loaded
    as it was, e.g. the same ``from_pretrained``); ``trainable``: its trained weights keep training."""
    from .methods import METHODS

    folder = Path(folder)
    # a run's adapter/ or model/ (RunResult.artifact_dir): its run.json, one folder up, names the method
    named = folder / METHOD_FILE if (folder / METHOD_FILE).is_file() else folder.parent / "run.json"
    try:
        name = json.loads(named.read_text(encoding="utf-8"))["method"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"no readable {METHOD_FILE}: not a folder adapterkit.save (or a run) wrote",
                        where=str(folder)) from None
    record = METHODS.get(name)
    loader = record.load_trainable if trainable else record.load
    if loader is None:
        raise UserError(f"{name} cannot continue training a saved artifact; load it with trainable=False",
                        where=str(folder))
    model = loader(base_model, folder)
    setattr(model, MARKER, record.name)
    return model
