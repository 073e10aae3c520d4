"""Everything a run needs before the first weight is read, in one place: recipe -> ``Preflight``.

    recipe ─► method "auto" chosen by the memory plan ─► plan (method × task × hardware, options validated,
    data files found) ─► model config (read once) ─► compatibility checks ─► strategy (auto: by the
    per-device memory plan) and its refusals ─► memory verdict

``adapterkit run``, ``zero-shot``, ``compare`` and ``plan`` all call ``preflight``; nothing here loads a
weight or writes a file, so every refusal is a one-line ``UserError`` before anything happens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .errors import UserError
from .loading import load_config, model_path
from .memory.verdict import Fit, assess, choose_method, enforce, eval_lengths, resolve_strategy, shape_of
from .methods.continuing import check_adapter, with_resolved_adapter
from .plan import AUTO, Plan, check_model, make_plan
from .recipe import Recipe
from .strategies import launch_refusal, refusal

log = logging.getLogger("adapterkit")


@dataclass(frozen=True)
class Preflight:
    plan: Plan
    model_config: Any  # transformers.PretrainedConfig, read once
    fit: Fit | None  # the memory verdict (None when not asked for)


def preflight(recipe: Recipe, *, force: bool = False, memory: str = "enforce", model_config: Any = None) -> Preflight:
    """Plan ``recipe`` and check it against the model's config and the memory budget.

    ``memory``: ``"enforce"`` refuses a plan that will not fit its profile unless ``force`` (``adapterkit run``),
    ``"assess"`` only computes the verdict (``adapterkit plan``), ``"skip"`` leaves it out (zero-shot, which
    trains nothing). ``model_config``: the model's config if the caller has read it already."""
    config = model_config
    if config is None and recipe.method.name == AUTO:
        config = load_config(recipe.model, recipe.source)
    if recipe.method.name == AUTO:
        recipe, reason = choose_method(recipe, config)
        log.info("%s", reason)
    plan = make_plan(with_resolved_adapter(recipe))  # model.adapter: a glob becomes the folder it names
    config = config if config is not None else load_config(recipe.model, plan.where)
    check_model(plan, config)
    if plan.recipe.model.adapter:
        check_adapter(plan.recipe, plan.method, model_path(plan.recipe.model))
    hw = plan.hardware
    several = hw.strategy == "auto" and hw.world_size > 1
    shape = shape_of(plan, config) if memory != "skip" or several else None  # the model built on the meta device
    if shape is not None:
        check_shape(plan, shape)
    plan = resolve_strategy(plan, shape if several else None)
    refused = refusal(plan) or (launch_refusal(plan.hardware) if memory == "enforce" else None)
    if refused:
        raise UserError(refused[0], where=f"{plan.where}: {refused[1]}")
    fit = None
    if memory == "enforce":
        fit = enforce(plan, shape, force=force)
    elif memory == "assess":
        fit = assess(plan, shape, eval_lengths(plan))
    return Preflight(plan, config, fit)


def check_shape(plan: Plan, shape) -> None:
    """The method's options against the model's shape (``Method.check_shape``: OFT's block size, freeze's top_layers)."""
    rule = plan.method.check_shape
    reason = rule(plan.method_options, shape) if rule is not None else None
    if reason:
        raise UserError(reason, where=plan.where)
