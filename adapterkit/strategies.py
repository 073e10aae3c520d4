"""How several devices share a run (``hardware.strategy``), as settings of the engines that do it: DDP and
FSDP2 through transformers' Trainer (accelerate underneath), DeepSpeed ZeRO through its config. Also the
combinations refused before launch, each in one line with its fix.

    ddp              every rank holds the whole model; gradients are all-reduced (DistributedDataParallel)
    fsdp             FSDP2 (``fully_shard``): weights, gradients and optimizer state sharded over the ranks
    deepspeed-zero2  DeepSpeed ZeRO stage 2: gradients and optimizer state sharded, weights replicated
    deepspeed-zero3  DeepSpeed ZeRO stage 3: weights too

On CPU (gloo) only DDP runs: accelerate picks its FSDP mode for accelerator devices only (on CPU, transformers'
Trainer either drops ``fsdp`` silently under ``use_cpu`` or stops with "Using fsdp only works in distributed
training"), and DeepSpeed trains on accelerators. ``memory/sharding.py`` sizes each strategy per device.
"""

from __future__ import annotations

import importlib.util
from typing import Any

STRATEGIES = ("ddp", "deepspeed-zero2", "fsdp", "deepspeed-zero3")  # cheapest communication first
SHARDS_WEIGHTS = ("fsdp", "deepspeed-zero3")
SHARDABLE_STORAGE = ("bf16", "fp16", "fp32")  # bnb_4bit_quant_storage dtypes FSDP can flatten and shard


def zero_stage(strategy: str) -> int | None:
    return {"deepspeed-zero2": 2, "deepspeed-zero3": 3}.get(strategy)


def loads_with_device_map(method, hardware) -> bool:
    """Whether ``loading.load_model`` places the model with a device_map: 4-bit loading on CUDA, except under
    FSDP (which loads on CPU and shards it itself)."""
    return method.quantization is not None and hardware.device == "cuda" and hardware.strategy != "fsdp"


def refusal(plan, strategy: str | None = None) -> tuple[str, str] | None:
    """(one-line reason with the fix, recipe key) for a combination that cannot work, or None. Checked before
    any weight is loaded; ``strategy`` defaults to the plan's (a concrete one, not ``auto``)."""
    hw, method, train = plan.hardware, plan.method, plan.recipe.train
    strategy = strategy or hw.strategy
    world = hw.world_size
    if train.batch_size % world:
        fit = -(-train.batch_size // world) * world
        return (f"train.batch_size {train.batch_size} is the global batch and must divide by the world size {world} "
                f"({hw.nodes} node(s) x {hw.devices} device(s)); use e.g. --set train.batch_size={fit}",
                "train.batch_size")
    if strategy in ("fsdp", "deepspeed-zero2", "deepspeed-zero3") and hw.device == "cpu":
        engine = "accelerate runs CPU ranks as DDP only" if strategy == "fsdp" else "DeepSpeed trains on GPUs"
        return f"strategy {strategy} needs GPUs ({engine}); on CPU use hardware.strategy = \"ddp\"", "hardware.strategy"
    if strategy == "deepspeed-zero3" and loads_with_device_map(method, hw):
        return (f"deepspeed-zero3 partitions the weights itself and cannot take a model placed with device_map, as "
                f"method {method.name!r} loads its 4-bit base; use hardware.strategy = \"fsdp\" (with "
                "method.quant_storage = \"bf16\") or \"deepspeed-zero2\"", "hardware.strategy")
    if strategy == "fsdp" and method.quantization is not None:
        storage = getattr(plan.method_options, "quant_storage", None)
        if storage not in SHARDABLE_STORAGE:
            return (f"FSDP shards only float tensors, and method {method.name!r} stores 4-bit weights as uint8; set "
                    "method.quant_storage = \"bf16\" (bitsandbytes' bnb_4bit_quant_storage) to make them shardable",
                    "method.quant_storage")
    if strategy in SHARDS_WEIGHTS and not method.needs.shardable:
        return (f"method {method.name!r} (prompt learning) computes its virtual tokens outside the modules "
                f"{strategy} shards, which peft does not support; use hardware.strategy = \"ddp\" or "
                "\"deepspeed-zero2\" (its trainable part is small)", "hardware.strategy")
    return None


def launch_refusal(hardware) -> tuple[str, str] | None:
    """What this machine lacks for the plan: DeepSpeed not installed, fewer devices than asked."""
    import os

    if zero_stage(hardware.strategy) and importlib.util.find_spec("deepspeed") is None:
        return (f"strategy {hardware.strategy} needs DeepSpeed, which is not installed: pip install deepspeed "
                "(or use hardware.strategy = \"fsdp\")", "hardware.strategy")
    if hardware.devices == 1:  # one process: runs wherever it is (the profile may describe another machine)
        return None
    if hardware.device == "cuda":
        import torch

        have, what = torch.cuda.device_count(), "GPUs"
    else:
        have, what = os.cpu_count() or 1, "CPU cores (one rank each)"
    if hardware.devices > have:
        return f"asks for {hardware.devices} devices but this machine has {have} {what}", "hardware.devices"
    return None


def deepspeed_config(hardware, stage: int) -> dict[str, Any]:
    """A DeepSpeed config for transformers' Trainer ("auto" values are filled from TrainingArguments)."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if hardware.cpu_offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {"zero_optimization": zero, "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
            "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto", "train_batch_size": "auto"}


def trainer_kwargs(hardware) -> dict[str, Any]:
    """TrainingArguments for the strategy when the run has several ranks (or a sharded strategy on one).

    The recipe's ``train.batch_size`` is the global batch: every rank loads the same global batch and
    accelerate splits it (``split_batches``), so the sampler (length-grouped), the data order and the
    optimizer steps are those of one process, whatever the world size."""
    kwargs: dict[str, Any] = {"ddp_timeout": int(hardware.timeout_minutes * 60)}
    if hardware.world_size > 1:
        kwargs["accelerator_config"] = {"split_batches": True}
        kwargs["ddp_find_unused_parameters"] = False
    if hardware.strategy == "fsdp":
        config: dict[str, Any] = {"version": 2, "reshard_after_forward": True, "cpu_offload": hardware.cpu_offload,
                                  "state_dict_type": "FULL_STATE_DICT", "cpu_ram_efficient_loading": True,
                                  "activation_checkpointing": hardware.gradient_checkpointing,
                                  "auto_wrap_policy": "TRANSFORMER_BASED_WRAP"}  # one unit per block (_no_split_modules)
        kwargs.update(fsdp=True, fsdp_config=config)
        if hardware.gradient_checkpointing:  # FSDP checkpoints activations itself (HF's would recompute twice)
            kwargs["activation_checkpointing"] = False
    elif zero_stage(hardware.strategy):
        kwargs["deepspeed"] = deepspeed_config(hardware, zero_stage(hardware.strategy))
    return kwargs
