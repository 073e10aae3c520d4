"""Per-device memory on several devices, and ``hardware.strategy = "auto"``'s choice.

``estimate.py`` gives one process's terms for the per-device batch (the global ``train.batch_size`` split
over the world size W); here each strategy divides what it shards by W (``strategies.py`` says how each
engine does it):

    ddp              nothing sharded; + gradient buckets: DDP all-reduces a flat copy of the gradients (T x 4)
    deepspeed-zero2  gradients and optimizer state / W (ZeRO stage 2); weights replicated
    fsdp, zero3      weights, trainable weights, gradients, optimizer state and autocast's copies / W (mixed
                     precision casts the gathered unit, freed again after it ran); + all-gather buffer: the
                     unsharded weights of the block being computed and of the prefetched next one
                     (2 x block parameters x bytes per weight)
    cpu_offload      sharded strategies only: fsdp/zero3 move their shards of weights, gradients and optimizer
                     state to CPU RAM, zero2 its gradients and optimizer state (ZeRO-Offload); the device keeps
                     the rest (activations, the all-gather buffer). What moves is reported as host RAM.

Activations and logits are per rank and unchanged. On CPU the ranks of a node share its RAM, so the budget
of one rank is the profile's memory divided by the ranks per node.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace

from ..strategies import SHARDS_WEIGHTS, STRATEGIES, refusal
from .estimate import GIB, MIB, Estimate
from .shape import ModelShape

STATIC = ("weights", "trainable", "optimizer")
ROOM = 0.8  # auto keeps DDP when its peak is at most 80% of a device's budget (room for longer batches, eval)


def _sharded_terms(strategy: str) -> tuple[str, ...]:
    if strategy in SHARDS_WEIGHTS:
        return ("weights", "trainable", "gradients", "optimizer", "autocast copies")
    return ("gradients", "optimizer") if strategy == "deepspeed-zero2" else ()


def per_device(est: Estimate, shape: ModelShape, hardware) -> Estimate:
    """``est`` (one process, per-device batch) as one device of ``hardware.world_size`` under its strategy."""
    world, strategy = hardware.world_size, hardware.strategy
    t = dict(est.terms)
    old_static, old_grad, old_casts = sum(t[k] for k in STATIC), t["gradients"], t.get("autocast copies", 0.0)
    for key in _sharded_terms(strategy):
        t[key] = t.get(key, 0.0) / world
    t["gradient buckets"] = old_grad if strategy == "ddp" and world > 1 else 0.0
    per_weight = est.terms["weights"] / max(1, shape.total_params)
    t["all-gather buffer"] = 2 * shape.block_params * per_weight if strategy in SHARDS_WEIGHTS else 0.0
    offloaded = 0.0
    if hardware.cpu_offload and strategy != "ddp":
        for key in ("gradients", "optimizer") if strategy == "deepspeed-zero2" else _sharded_terms(strategy)[:4]:
            offloaded += t[key]
            t[key] = 0.0
    activations = t["activations"] + t["logits"]
    delta = (sum(t[k] for k in STATIC) - old_static + max(activations, t["gradients"]) - max(activations, old_grad)
             + t["gradient buckets"] + t["all-gather buffer"] + t.get("autocast copies", 0.0) - old_casts)
    eval_delta = sum(t[k] for k in STATIC) - old_static + t["all-gather buffer"]
    notes = dict(est.notes)
    if world > 1:
        notes["strategy"] = (f"{strategy} over {world} device(s)"
                             + (f": {', '.join(_sharded_terms(strategy))} / {world}" if _sharded_terms(strategy) else "")
                             + (f"; {offloaded / 2**30:.2f} GiB per rank offloaded to CPU RAM" if offloaded else ""))
    return replace(est, terms=t, notes=notes, train=est.train + delta, eval=est.eval + eval_delta,
                   offloaded=offloaded)


def rank_budget(hardware) -> float:
    """GiB one rank may use: a device's memory (GPU), or the node's RAM shared by its ranks (CPU)."""
    return hardware.memory_gb / (hardware.devices if hardware.device == "cpu" else 1)


def size(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"


def choose_strategy(plan, assess) -> tuple[str, str]:
    """``hardware.strategy = "auto"`` on W > 1 devices: DDP when the model fits one device with ROOM to spare,
    else the first of STRATEGIES (cheapest communication first) that is allowed, installed and fits.
    ``assess(plan) -> Fit``. Returns (strategy, reason)."""
    hw, tried = plan.hardware, []
    for strategy in STRATEGIES:
        candidate = replace(plan, hardware=replace(hw, strategy=strategy))
        why = refusal(candidate)
        if why:
            tried.append(f"{strategy}: {why[0].split(';')[0]}")
            continue
        if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
            tried.append(f"{strategy}: deepspeed is not installed")
            continue
        fit = assess(candidate)
        limit = fit.budget * (ROOM if strategy == "ddp" else 1.0)
        if fit.estimate.peak <= limit:
            what = "fits one device with room to spare" if strategy == "ddp" else "fits"
            reason = "; ".join([*tried, f"{strategy} {what} ({size(fit.estimate.peak)} of {size(fit.budget)} "
                                        f"per device): chosen"])
            return strategy, f"strategy auto -> {strategy} on {hw.world_size} x {hw.name} ({reason})"
        tried.append(f"{strategy} needs {size(fit.estimate.peak)} > {size(limit)} per device")
    allowed = [s for s in STRATEGIES if not refusal(replace(plan, hardware=replace(hw, strategy=s)))]
    chosen = next((s for s in reversed(allowed) if not s.startswith("deepspeed")), allowed[-1] if allowed else "ddp")
    return chosen, f"strategy auto -> {chosen}: nothing fits ({'; '.join(tried)})"
