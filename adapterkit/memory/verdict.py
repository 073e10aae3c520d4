"""Will it fit? The memory verdict for a plan: predicted peak (``memory/estimate.py``) against the
profile's budget, the cheapest change that makes a recipe fit, and the choice behind ``method.name = "auto"``.

Generic: methods are compared through their records (``footprint``, ``quantization``, ``needs``); the
only names here are ``AUTO_ORDER``, the documented preference of ``method.name = "auto"``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from ..errors import UserError
from .estimate import GIB, MIB, Estimate, ModelShape, Workload, estimate, model_shape

log = logging.getLogger("adapterkit")

AUTO_ORDER = ("full", "lora", "qlora")  # best first: full if it fits with FULL_MARGIN to spare, else the next that fits
FULL_MARGIN = 0.8  # full fine-tuning is chosen only if its peak is at most 80% of the budget


@dataclass(frozen=True)
class Fit:
    plan: Any  # plan.Plan
    estimate: Estimate
    budget: float  # bytes
    shape: ModelShape | None = None  # what the estimate was made from

    @property
    def fits(self) -> bool:
        return self.estimate.peak <= self.budget


def size(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.0f} MiB"


def padding_free(plan) -> bool:
    """Whether the task runs padding-free rows (one row of whole examples per pass): its own rule, read
    through its optional ``padding_free(plan)``."""
    rule = getattr(plan.task, "padding_free", None)
    return bool(rule and rule(plan))


def workload(plan) -> Workload:
    """Rows x tokens of the largest forward pass, worst case (every row ``max_length`` long).

    Padding-free chat (``task.padding_free``, not packing, no ``needs.padded_rows``) runs one row per
    pass of at most ``task.tokens_per_pass`` tokens (a conversation longer than that, at most ``max_length``,
    is a pass of its own), so it is planned as 1 row of that many tokens; its eval batches hold
    ``eval batch x max_length`` tokens at most, planned as the same row length.
    """
    from ..loading import weights_dtype

    train, hw, opts = plan.recipe.train, plan.hardware, plan.task_options
    batch, seq = train.batch_size, getattr(opts, "max_length", None) or 512
    eval_batch = train.eval_batch
    if padding_free(plan):
        per_pass = min(batch * seq, max(opts.tokens_per_pass or batch * seq, seq))
        eval_batch = -(-eval_batch * seq // per_pass)
        batch, seq = 1, per_pass
    needs = memory_needs(plan)
    rows = needs.get("rows_per_example", 1)
    return Workload(batch_size=batch * rows, seq_len=seq, eval_batch_size=eval_batch * rows, precision=hw.precision,
                    device=hw.device, gradient_checkpointing=hw.gradient_checkpointing,
                    weights_dtype=weights_dtype(plan.method, hw),
                    frozen_reference=bool(needs.get("frozen_reference", False)))


def memory_needs(plan) -> dict[str, Any]:
    """What the task adds to the workload, through its optional ``memory_needs(plan)``: ``rows_per_example``
    (preference pairs run chosen and rejected in one batch) and ``frozen_reference`` (a second, frozen copy of
    the base model is held as the reference)."""
    rule = getattr(plan.task, "memory_needs", None)
    return rule(plan) if rule else {}


def shape_of(plan, model_config) -> ModelShape:
    from ..loading import model_path

    return model_shape(model_config, plan.task.auto_class, lm_task=plan.task.peft_task_type in ("CAUSAL_LM",),
                       model_dir=model_path(plan.recipe.model), trust_remote_code=plan.recipe.model.trust_remote_code)


def assess(plan, shape: ModelShape) -> Fit:
    return Fit(plan, estimate(shape, plan.method, plan.method_options, workload(plan)), plan.hardware.memory_gb * GIB,
               shape)


def _with(plan, *, batch: int | None = None, checkpointing: bool | None = None, method=None, options=None):
    recipe, hw = plan.recipe, plan.hardware
    if batch is not None:
        accum = max(1, recipe.train.batch_size * recipe.train.grad_accum // batch)
        recipe = recipe.model_copy(update={"train": recipe.train.model_copy(
            update={"batch_size": batch, "grad_accum": accum})})
    if checkpointing is not None:
        hw = replace(hw, gradient_checkpointing=checkpointing)
    return replace(plan, recipe=recipe, hardware=hw, method=method or plan.method,
                   method_options=options if options is not None else plan.method_options)


def with_method(recipe, name: str):
    """``recipe`` with method ``name``, keeping the ``[method]`` options that method accepts."""
    from pydantic import ValidationError

    from ..methods import METHODS
    from ..recipe import NamedSection

    options = METHODS.get(name, where=f"{recipe.source}: method.name").options
    kept = {k: v for k, v in recipe.method.options.items() if k in options.model_fields}
    try:
        options(**kept)
    except ValidationError as err:  # same key, other meaning (e.g. ia3's target_modules takes no "all-linear")
        bad = {e["loc"][0] for e in err.errors() if e["loc"]}
        kept = {k: v for k, v in kept.items() if k not in bad}
    return recipe.model_copy(update={"method": NamedSection(name=name, **kept)})


def carried_options(options: dict[str, Any], method) -> Any:
    """``method``'s options built from the keys of ``options`` it accepts (the rest are dropped)."""
    return method.options(**{k: v for k, v in options.items() if k in method.options.model_fields})


def _candidates(plan):
    """(description, changed plan) from cheapest to dearest: fewer samples per step keep the maths; checkpointing
    costs ~30% time; a 4-bit base costs speed and a little quality; a lower rank costs capacity."""
    from ..methods import METHODS

    train, batches = plan.recipe.train, []
    b = train.batch_size
    while b > 1:
        b //= 2
        batches.append(b)
    for b in batches:
        p = _with(plan, batch=b)
        yield f"--set train.batch_size={b} --set train.grad_accum={p.recipe.train.grad_accum}", p
    can_checkpoint = not plan.method.needs.injects_past_key_values
    if can_checkpoint and not plan.hardware.gradient_checkpointing:
        yield "--set hardware.gradient_checkpointing=true", _with(plan, checkpointing=True)
        for b in batches:
            p = _with(plan, batch=b, checkpointing=True)
            yield (f"--set hardware.gradient_checkpointing=true --set train.batch_size={b} "
                   f"--set train.grad_accum={p.recipe.train.grad_accum}"), p
    if plan.method.quantization is None and plan.hardware.bnb_4bit:
        current = plan.method_options.model_dump(exclude_unset=True)
        for m in METHODS:
            if m.quantization is not None and (m.needs.tasks is None or plan.task.name in m.needs.tasks):
                p = _with(plan, method=m, options=carried_options(current, m))
                yield f"--set method.name={m.name}", p
                if can_checkpoint and not plan.hardware.gradient_checkpointing:
                    yield f"--set method.name={m.name} --set hardware.gradient_checkpointing=true", _with(
                        p, checkpointing=True)
    r = getattr(plan.method_options, "r", None)
    while isinstance(r, int) and r > 1:
        r //= 2
        yield f"--set method.r={r}", _with(plan, options=plan.method_options.model_copy(update={"r": r}))


def cheapest_fix(plan, shape: ModelShape) -> tuple[str, Fit] | None:
    for change, candidate in _candidates(plan):
        fit = assess(candidate, shape)
        if fit.fits:
            return change, fit
    return None


def verdict(fit: Fit, shape: ModelShape) -> str:
    """One line: fits, or does not fit with the cheapest fix."""
    hw, est = fit.plan.hardware, fit.estimate
    head = (f"{fit.plan.method.name} needs {size(est.peak)} at peak ({est.phase}) of {hw.memory_gb:.1f} GiB on "
            f"profile {hw.name}")
    if fit.fits:
        return f"fits: {head}"
    fix = cheapest_fix(fit.plan, shape)
    advice = f"cheapest fix: {fix[0]} (needs {size(fix[1].estimate.peak)})" if fix else "no single change makes it fit"
    return f"does not fit: {head}; {advice}"


def enforce(plan, model_config, *, force: bool = False) -> Fit:
    """Refuse (UserError, one line) a plan that will not fit its profile, unless ``force``."""
    shape = shape_of(plan, model_config)
    fit = assess(plan, shape)
    line = verdict(fit, shape)
    if fit.fits or force:
        log.info("memory plan: %s%s", line, "" if fit.fits else " (--force: running anyway)")
        return fit
    raise UserError(f"{line}; --force runs anyway", where=f"{plan.where}: hardware.profile")


def choose_method(recipe, model_config):
    """``method.name = "auto"``: the first of AUTO_ORDER that fits (full only with FULL_MARGIN to spare).

    Returns (recipe with the chosen method, reason).
    """
    from ..plan import make_plan

    tried, shape = [], None
    for name in AUTO_ORDER:
        try:
            candidate = with_method(recipe, name)
            plan = make_plan(candidate)
        except UserError as err:  # e.g. no 4-bit kernels on this profile, or options it does not take
            tried.append(f"{name}: {str(err).rsplit(': ', 1)[-1]}")
            continue
        shape = shape or shape_of(plan, model_config)
        fit = assess(plan, shape)
        limit = fit.budget * (FULL_MARGIN if plan.method.trains_base else 1.0)
        if fit.estimate.peak <= limit:
            reason = "; ".join([*tried, f"{name} needs {size(fit.estimate.peak)} of {size(fit.budget)}: chosen"])
            return candidate, f"method auto -> {name} on {plan.hardware.name} ({reason})"
        tried.append(f"{name} needs {size(fit.estimate.peak)} > {size(limit)}")
    raise UserError(f"method auto: nothing fits ({'; '.join(tried)})", where=f"{recipe.source}: method.name")
