"""The text of ``adapterkit plan``: one or more plans of the same recipe and profile side by side, term by
term, with each one's verdict."""

from __future__ import annotations

from .shape import ModelShape
from .verdict import Fit, padding_free, size, verdict, workload

ROWS = ("weights", "reference model", "mapped checkpoint", "trainable", "gradients", "optimizer", "activations",
        "logits", "autocast copies", "heap slack", "low-precision kernels", "overhead", "gradient buckets",
        "all-gather buffer")


def _rows(plan) -> str:
    if padding_free(plan):
        return "padding-free: one row per pass, at most task.tokens_per_pass tokens or one conversation"
    return "task max_length"


def _world(plan, fit: Fit) -> list[str]:
    """The strategy line of a plan on several devices (empty on one)."""
    hw = plan.hardware
    if hw.world_size == 1 and hw.strategy in ("ddp", "auto"):
        return []
    share = " (a CPU rank's share of the node's RAM)" if hw.device == "cpu" and hw.devices > 1 else ""
    return [f"world: {hw.nodes} node(s) x {hw.devices} device(s) = {hw.world_size} ranks, strategy {hw.strategy}"
            f"{', CPU offload' if hw.cpu_offload else ''}; global batch {plan.recipe.train.batch_size} split per "
            f"rank; budget {size(fit.budget)} per rank{share}"]


def render(fits: list[Fit], shape: ModelShape) -> str:
    """A side-by-side breakdown of one or more plans of the same recipe and profile."""
    first = fits[0].plan
    hw, work = first.hardware, workload(first)
    lines = [f"recipe {first.recipe.name}: model {first.recipe.model.name} ({shape.model_type}, "
             f"{shape.total_params / 1e6:.1f}M parameters), task {first.task.name}",
             f"profile {hw.name}: {hw.device} x{hw.devices}, budget {hw.memory_gb:.1f} GiB per device, "
             f"precision {hw.precision}, 4-bit kernels {'yes' if hw.bnb_4bit else 'no'}",
             *_world(first, fits[0]),
             f"workload: batch {work.batch_size} x {work.seq_len} tokens ({_rows(first)}), eval batch "
             f"{work.eval_batch_size}, grad accumulation {first.recipe.train.grad_accum}", ""]
    first_terms = ROWS[:9]  # always shown; the strategy's own terms only when one has them
    width = max(14, *(len(f.plan.method.name) + 2 for f in fits))
    row = lambda label, cells: f"{label:<22}" + "".join(f"{c:>{width}}" for c in cells)  # noqa: E731
    lines.append(row("", [f.plan.method.name for f in fits]))
    if hw.world_size > 1:
        lines.append(row("strategy", [f.plan.hardware.strategy + (" +offload" if f.plan.hardware.cpu_offload else "")
                                      for f in fits]))
    lines.append(row("trainable params", [f"{f.estimate.trainable_params / 1e6:.2f}M" for f in fits]))
    for term in ROWS:
        if term in first_terms or any(f.estimate.terms.get(term) for f in fits):
            lines.append(row(term, [size(f.estimate.terms.get(term, 0.0)) for f in fits]))
    lines.append(row("  act. checkpointed", [size(f.estimate.activations_checkpointed) for f in fits]))
    lines.append(row("  act. not checkpointed", [size(f.estimate.activations_full) for f in fits]))
    for phase in ("train", "eval", "load"):
        lines.append(row(f"{phase} phase", [size(getattr(f.estimate, phase)) for f in fits]))
    lines.append(row("PEAK" if hw.world_size == 1 else "PEAK per device", [size(f.estimate.peak) for f in fits]))
    if any(f.estimate.offloaded for f in fits):
        lines.append(row("offloaded to CPU RAM", [size(f.estimate.offloaded) for f in fits]))
    if hw.world_size > 1:
        lines.append(row(f"total x{hw.world_size}", [size(f.estimate.peak * hw.world_size) for f in fits]))
    lines.append(row("verdict", ["fits" if f.fits else "DOES NOT FIT" for f in fits]))
    lines.append("")
    for f in fits:
        notes = "; ".join(f"{k}: {v}" for k, v in f.estimate.notes.items())
        lines.append(f"{f.plan.method.name}: {verdict(f, shape)}")
        lines.append(f"  ({notes})")
    return "\n".join(lines)
