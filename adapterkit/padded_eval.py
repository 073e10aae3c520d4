"""``eval_loss`` over the eval set exactly once when several ranks split each eval batch (``split_batches``).

The Trainer's evaluation loop repeats each rank's batch loss ``args.eval_batch_size`` times before gathering: with
split batches that is the global batch, not the rank's share of it, so the gather holds every full batch twice
over (2 ranks) and, at the last batch of an eval set that does not divide by it, keeps only the first
``remainder`` entries, all rank 0's: the last batch's loss was rank 0's half alone, counted half as much as it
should be. Accelerate also completes that last batch with rows from the first one (``even_batches``), so a rank's
share may mix real and padding rows. Predictions are fine (``gather_for_metrics`` keeps the real rows).

``exact_eval_loss`` adds up, on each rank, the loss of its real rows times their number (one more forward over
the real rows of a mixed share, on that batch only), sums over the ranks when the loop ends, and puts that mean in
``<prefix>_loss``: the mean over the eval set, row-weighted, as one process computes it.
"""

from __future__ import annotations

from typing import Any


def real_rows(remainder: int, rank: int, rows: int) -> int:
    """How many of this rank's ``rows`` in the padded last batch are real: the global batch's first ``remainder``
    rows are, and rank r holds rows ``r * rows`` to ``(r + 1) * rows``."""
    return max(0, min(rows, remainder - rank * rows))


def exact_eval_loss(trainer) -> None:
    """Wrap ``trainer.prediction_step`` and ``trainer.evaluation_loop`` as the module says. Nothing changes on one
    process, when ranks do not split batches, or for a trainer with its own ``prediction_step`` (trl's record
    metrics on each call, which a second forward would count twice)."""
    import torch
    from transformers import Seq2SeqTrainer, Trainer

    own = type(trainer).prediction_step not in (Trainer.prediction_step, Seq2SeqTrainer.prediction_step)
    if trainer.args.world_size <= 1 or not trainer.accelerator.split_batches or own:
        return

    step, loop = trainer.prediction_step, trainer.evaluation_loop
    totals: list[float] = []  # this rank's [sum of loss x real rows, real rows] in the running evaluation

    def prediction_step(model, inputs, prediction_loss_only, ignore_keys=None, **kwargs: Any):
        loss, logits, labels = step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **kwargs)
        if loss is None or not totals:
            return loss, logits, labels
        state = trainer.accelerator.gradient_state
        rows = next((v.shape[0] for v in inputs.values() if torch.is_tensor(v) and v.dim()), 0)
        keep = real_rows(state.remainder, trainer.args.process_index, rows) if (
            state.end_of_dataloader and state.remainder > 0) else rows
        real = loss
        if 0 < keep < rows:  # real and padding rows: the loss of the real ones
            kept = {k: v[:keep] if torch.is_tensor(v) and v.dim() and v.shape[0] == rows else v for k, v in inputs.items()}
            real = step(model, kept, True, ignore_keys=ignore_keys, **kwargs)[0]
        if keep:
            totals[0] += float(real) * keep
            totals[1] += keep
        return loss, logits, labels

    def evaluation_loop(*args: Any, metric_key_prefix: str = "eval", **kwargs: Any):
        totals[:] = [0.0, 0]
        try:
            output = loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
            summed = trainer.accelerator.reduce(torch.tensor(totals, dtype=torch.float64), reduction="sum")
        finally:
            totals.clear()
        key = f"{metric_key_prefix}_loss"
        if key in output.metrics and float(summed[1]) > 0:
            output.metrics[key] = float(summed[0] / summed[1])
        return output

    trainer.prediction_step = prediction_step
    trainer.evaluation_loop = evaluation_loop
