"""The text of ``adapterkit plan``: one or more plans of the same recipe and profile side by side, term by
term, with each one's verdict."""

from __future__ import annotations

from .estimate import ModelShape
from .verdict import Fit, padding_free, size, verdict, workload

ROWS = ("weights", "reference model", "mapped checkpoint", "trainable",
        "gradients", "optimizer", "activations", "logits", "heap slack",
        "overhead")


def _rows(plan) -> str:
    if padding_free(plan):
        return "padding-free: one row per pass, at most task.tokens_per_pass tokens or one conversation"
    return "task max_length"


def render(fits: list[Fit], shape: ModelShape) -> str:
    """A side-by-side breakdown of one or more plans of the same recipe and profile."""
    first = fits[0].plan
    hw, work = first.hardware, workload(first)
    lines = [f"recipe {first.recipe.name}: model {first.recipe.model.name} ({shape.model_type}, "
             f"{shape.total_params / 1e6:.1f}M parameters), task {first.task.name}",
             f"profile {hw.name}: {hw.device} x{hw.devices}, budget {hw.memory_gb:.1f} GiB per device, "
             f"precision {hw.precision}, 4-bit kernels {'yes' if hw.bnb_4bit else 'no'}",
             f"workload: batch {work.batch_size} x {work.seq_len} tokens ({_rows(first)}), eval batch "
             f"{work.eval_batch_size}, grad accumulation {first.recipe.train.grad_accum}", ""]
    width = max(14, *(len(f.plan.method.name) + 2 for f in fits))
    row = lambda label, cells: f"{label:<22}" + "".join(f"{c:>{width}}" for c in cells)  # noqa: E731
    lines.append(row("", [f.plan.method.name for f in fits]))
    lines.append(row("trainable params", [f"{f.estimate.trainable_params / 1e6:.2f}M" for f in fits]))
    for term in ROWS:
        lines.append(row(term, [size(f.estimate.terms[term]) for f in fits]))
    lines.append(row("  act. checkpointed", [size(f.estimate.activations_checkpointed) for f in fits]))
    lines.append(row("  act. not checkpointed", [size(f.estimate.activations_full) for f in fits]))
    for phase in ("train", "eval", "load"):
        lines.append(row(f"{phase} phase", [size(getattr(f.estimate, phase)) for f in fits]))
    lines.append(row("PEAK", [size(f.estimate.peak) for f in fits]))
    lines.append(row("verdict", ["fits" if f.fits else "DOES NOT FIT" for f in fits]))
    lines.append("")
    for f in fits:
        notes = "; ".join(f"{k}: {v}" for k, v in f.estimate.notes.items())
        lines.append(f"{f.plan.method.name}: {verdict(f, shape)}")
        lines.append(f"  ({notes})")
    return "\n".join(lines)
