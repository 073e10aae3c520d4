"""Trainer arguments shared by every task: the recipe's budget and the hardware profile's precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import strategies
from .rundir import staging_dir

# Under bf16 on a CPU, oneDNN keeps memory for every distinct matmul shape it has run (a bf16 Linear over 300 row
# counts: +683 MiB RSS; fp32: +35 MiB), and per-batch padding gives a new length almost every step. Batches and
# padding-free passes are rounded up to this many tokens there. Measured (docs/defaults.md, "Precision"): 16 took
# NER's bf16 peak from 1,346 to 994 MiB (fp32: 1,188) and chat's from 1,674 to 1,600; 64 doubled NER's longest
# batch (75 -> 128 tokens: 1,297 MiB, and slower than fp32).
SHAPE_MULTIPLE = 16


def shape_multiple(hw) -> int | None:
    """Tokens a batch's (or padding-free pass's) length is rounded up to, or None: only under bf16/fp16 on a CPU,
    where each new shape costs memory; fp32 and CUDA keep per-batch lengths (rounding would only add compute)."""
    return SHAPE_MULTIPLE if hw.device == "cpu" and hw.precision in ("bf16", "fp16") else None


def training_kwargs(plan, run_dir: Path) -> dict[str, Any]:
    """Keyword arguments valid for both ``transformers.TrainingArguments`` and ``trl.SFTConfig``."""
    train, hw = plan.recipe.train, plan.hardware
    best = best_metric(plan)
    save_every = train.save_every or (train.eval_every if best else None)  # the best checkpoint is one of the saved
    kwargs = dict(
        output_dir=str(staging_dir(run_dir)),  # callbacks.PublishCheckpoints renames each checkpoint out of it
        max_steps=train.max_steps,
        num_train_epochs=train.epochs,
        learning_rate=plan.learning_rate,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.eval_batch,
        gradient_accumulation_steps=train.grad_accum,
        seed=train.seed,
        data_seed=train.seed,
        warmup_steps=train.warmup_ratio,
        weight_decay=train.weight_decay,
        lr_scheduler_type=train.lr_scheduler,
        max_grad_norm=train.max_grad_norm,
        logging_steps=train.logging_steps,
        logging_nan_inf_filter=False,  # a NaN/inf loss must reach callbacks.StopOnNonFinite
        eval_strategy="steps" if train.eval_every else "no",
        eval_steps=train.eval_every,
        save_strategy="steps" if save_every else "no",
        save_steps=save_every or 500,
        save_total_limit=2,
        load_best_model_at_end=best is not None,
        metric_for_best_model=best,
        greater_is_better=None if best is None else greater_is_better(plan, best),
        report_to=list(train.report_to) or "none",  # callbacks.track points them at RUN_DIR/logs
        use_cpu=hw.device == "cpu",
        bf16=hw.precision == "bf16",
        fp16=hw.precision == "fp16",
        activation_checkpointing=hw.gradient_checkpointing,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        train_sampling_strategy="group_by_length",
        disable_tqdm=False,
    )
    kwargs |= strategies.trainer_kwargs(hw)  # several ranks: the global batch split per rank; DDP/FSDP2/ZeRO
    rule = getattr(plan.task, "padding_free", None)
    if hw.world_size > 1 and rule is not None and rule(plan):
        # a padding-free batch is one flattened row, which cannot be split: each rank reads its own share of rows
        # (same global batch and steps; the data order is not one process's)
        kwargs["accelerator_config"] = {"split_batches": False}
        kwargs["per_device_train_batch_size"] = max(1, train.batch_size // hw.world_size)
        kwargs["per_device_eval_batch_size"] = max(1, train.eval_batch // hw.world_size)
    return kwargs


def best_metric(plan) -> str | None:
    """The eval metric the best checkpoint is chosen by: ``train.keep_best``; early stopping without it watches
    the task's primary metric; None when no best checkpoint is kept."""
    train = plan.recipe.train
    return train.keep_best or (plan.task.primary_metric if train.early_stopping_patience else None)


def greater_is_better(plan, metric: str) -> bool:
    """The task's own ranking for its primary metric; otherwise losses fall and every other metric rises."""
    if metric == plan.task.primary_metric:
        return plan.task.greater_is_better
    return not metric.endswith("loss")


def trainable_in_fp32(model) -> int:
    """Keep trainable weights in fp32 (master weights; autocast does the bf16/fp16 math).

    trl's SFTTrainer casts QLoRA adapter weights to bf16 when it is built; AdamW updates to pure bf16
    weights round away, and on CPUs without fast bf16 every LoRA matmul gets slower. Returns how many
    tensors were cast back.
    """
    import torch

    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.bfloat16, torch.float16):
            param.data = param.data.float()
            cast += 1
    return cast


def whole_run_loss(history: list[dict], loss_since: float, resumed_at: int, steps: int) -> float:
    """The mean training loss over every step of a run that resumed at step ``resumed_at``: the Trainer's own figure
    (``loss_since``) covers only the steps it ran after resuming, so the steps before come from the logged history
    (each ``loss`` entry is the mean over the steps since the one before; a window the checkpoint cut is left out)."""
    total, covered, last = 0.0, 0, 0
    for entry in history:
        if "loss" in entry and last < entry.get("step", 0) <= resumed_at:
            total += entry["loss"] * (entry["step"] - last)
            covered += entry["step"] - last
            last = entry["step"]
    after = steps - resumed_at
    return (total + loss_since * after) / (covered + after) if covered + after else loss_since


def warn_uneven_last_batch(plan, data) -> str | None:
    """With several ranks, say (rank 0, once) when the train split does not divide by the global batch: accelerate
    completes each epoch's last, shorter batch with rows from the epoch's first one (``even_batches``), so that step
    trains on some rows twice and its loss and weights differ from one process's (the other steps are the same).
    Returns the warning, or None."""
    import logging

    from . import distributed

    train, rows = plan.recipe.train, getattr(data, "train", None)
    if plan.hardware.world_size == 1 or rows is None or not hasattr(rows, "__len__") or not len(rows) % train.batch_size:
        return None
    if 0 < train.max_steps and train.max_steps * train.grad_accum <= len(rows) // train.batch_size:
        return None  # the run stops before the short batch
    short = len(rows) % train.batch_size
    text = (f"{len(rows)} train rows do not divide by train.batch_size {train.batch_size}: on "
            f"{plan.hardware.world_size} ranks each epoch's last batch of {short} rows is completed with "
            f"{train.batch_size - short} rows of the epoch's first batch (accelerate's even batches), so that step "
            "differs from one process's; a batch size that divides the train rows (or data.limit_train) avoids it")
    if distributed.is_main():
        logging.getLogger("adapterkit").warning(text)
    return text
