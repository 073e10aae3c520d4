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
from ..methods.continuing import saved_options
from ..strategies import STRATEGIES, refusal
from .estimate import GIB, Estimate, Workload, estimate
from .shape import ModelShape, model_shape
from .sharding import choose_strategy, per_device, rank_budget, size

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


def padding_free(plan) -> bool:
    """Whether the task runs padding-free rows (one row of whole examples per pass): its own rule, read
    through its optional ``padding_free(plan)``."""
    rule = getattr(plan.task, "padding_free", None)
    return bool(rule and rule(plan))


def workload(plan, eval_lengths: tuple[int, int] | None = None) -> Workload:
    """Rows x tokens of the largest forward pass, worst case (every row ``max_length`` long).

    Padding-free chat (``task.padding_free``, not packing, no ``needs.padded_rows``) runs one row per
    pass of at most ``task.tokens_per_pass`` tokens (a conversation longer than that, at most ``max_length``,
    is a pass of its own), so it is planned as 1 row of that many tokens; its eval batches hold
    ``eval batch x max_length`` tokens at most, planned as the same row length. ``eval_lengths``: (tokens,
    scored positions) of the eval split's largest batch, read by the task before any weight is loaded
    (``eval_batch_lengths``), which replace that bound.
    """
    from ..hardware.detect import cpu_flags, torch_ships_cuda
    from ..hardware.libraries import imported_libraries_mib
    from ..hardware.precision import cpu_kind
    from ..loading import weights_dtype
    from ..training import shape_multiple

    train, hw, opts = plan.recipe.train, plan.hardware, plan.task_options
    rounding = shape_multiple(hw)  # bf16 on a CPU: batches and passes are rounded up to this many tokens
    multiple = rounding or 1
    world = hw.world_size  # train.batch_size is the global batch: each rank computes its share
    # an encoder-decoder's targets may be longer than its sources (seq2seq's task.max_target_length)
    seq = max(getattr(opts, "max_length", None) or 512, getattr(opts, "max_target_length", None) or 0)
    seq = -(-seq // multiple) * multiple
    batch = max(1, train.batch_size // world)
    eval_batch = max(1, train.eval_batch // world)
    if padding_free(plan):
        per_pass = min(batch * seq, max(-(-(opts.tokens_per_pass or batch * seq) // multiple) * multiple, seq))
        eval_batch = -(-eval_batch * seq // per_pass)
        batch, seq = 1, per_pass
    needs = memory_needs(plan)
    rows = needs.get("rows_per_example", 1)
    # token counts a pass can have (bf16/fp16 on a CPU, memory/kernels.py): every rounded length up to the longest
    # pass; every length where the task's collator cannot round; one where passes are all one length (packed blocks)
    if rounding is None or needs.get("fixed_length"):
        lengths = 1
    else:
        lengths = seq if needs.get("unrounded_lengths") else max(1, seq // multiple)
    return Workload(batch_size=batch * rows, seq_len=seq, eval_batch_size=eval_batch * rows, precision=hw.precision,
                    device=hw.device, gradient_checkpointing=hw.gradient_checkpointing,
                    weights_dtype=weights_dtype(plan.method, hw),
                    eval_tokens=eval_lengths[0] if eval_lengths else None,
                    eval_scored=eval_lengths[1] if eval_lengths else None,
                    frozen_reference=bool(needs.get("frozen_reference", False)),
                    lm_head_tile=needs.get("lm_head_tile"), logit_metrics=needs.get("logit_metrics", True),
                    fp32_adapter_sums=bool(needs.get("fp32_adapter_sums", False)),
                    torch_ships_cuda=hw.device == "cpu" and torch_ships_cuda(), pass_lengths=lengths,
                    libraries_mib=imported_libraries_mib() if hw.device == "cpu" else None,
                    cpu_kind=cpu_kind(cpu_flags()) if hw.device == "cpu" else None)


def memory_needs(plan) -> dict[str, Any]:
    """What the task adds to the workload, through its optional ``memory_needs(plan)``: ``rows_per_example``
    (preference pairs run chosen and rejected in one batch), ``frozen_reference`` (a second, frozen copy of
    the base model is held as the reference) and ``lm_head_tile`` ((tokens, vocabulary entries): the loss scores
    the LM head in tiles of at most that size instead of building the whole logits) and ``logit_metrics`` (False:
    the trainer only takes the model's loss, no metrics computed from the logits; default True) and
    ``fp32_adapter_sums`` (adapter sums are taken in fp32 under autocast: methods/fp32_adapter_sum.py)."""
    rule = getattr(plan.task, "memory_needs", None)
    return rule(plan) if rule else {}


def shape_of(plan, model_config) -> ModelShape:
    from ..loading import model_path

    return model_shape(model_config, plan.task.auto_class, lm_task=plan.task.peft_task_type in ("CAUSAL_LM", "SEQ_2_SEQ_LM"),
                       model_dir=model_path(plan.recipe.model), trust_remote_code=plan.recipe.model.trust_remote_code)


def eval_lengths(plan) -> tuple[int, int] | None:
    """(tokens, scored positions) of the eval split's largest batch, through the task's optional
    ``eval_batch_lengths(plan)`` (reads the data and the tokenizer, never a weight); None: the worst case."""
    rule = getattr(plan.task, "eval_batch_lengths", None)
    return rule(plan) if rule else None


def assess(plan, shape: ModelShape, lengths: tuple[int, int] | None = None) -> Fit:
    """Per device: one rank's estimate under the plan's strategy against one rank's budget (memory/sharding.py)."""
    options = saved_options(plan.method_options, plan.recipe.model.adapter, plan.recipe.source)  # continuing: its own
    one = estimate(shape, plan.method, options, workload(plan, lengths))
    return Fit(plan, per_device(one, shape, plan.hardware), rank_budget(plan.hardware) * GIB, shape)


def resolve_strategy(plan, shape: ModelShape, lengths: tuple[int, int] | None = None):
    """The plan with a concrete ``hardware.strategy`` (``auto``: memory/sharding.choose_strategy; one device: ddp)."""
    hw = plan.hardware
    if hw.strategy != "auto":
        return plan
    if hw.world_size == 1:
        return replace(plan, hardware=replace(hw, strategy="ddp"))
    strategy, reason = choose_strategy(plan, lambda candidate: assess(candidate, shape, lengths))
    log.info("%s", reason)
    return replace(plan, hardware=replace(hw, strategy=strategy))


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
    hw = plan.hardware
    if hw.world_size > 1:  # shard more (FSDP before DeepSpeed, which may not be installed), then offload to CPU
        if hw.strategy != "ddp" and not hw.cpu_offload:
            yield "--set hardware.cpu_offload=true", replace(plan, hardware=replace(hw, cpu_offload=True))
        later = STRATEGIES[STRATEGIES.index(hw.strategy) + 1:] if hw.strategy in STRATEGIES else ()
        for strategy in sorted(later, key=lambda s: s.startswith("deepspeed")):
            p = replace(plan, hardware=replace(hw, strategy=strategy))
            if not refusal(p):
                yield f"--set hardware.strategy={strategy}", p
                if not hw.cpu_offload:
                    yield (f"--set hardware.strategy={strategy} --set hardware.cpu_offload=true",
                           replace(p, hardware=replace(p.hardware, cpu_offload=True)))
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
    if hw.world_size == 1:
        where = f"{hw.memory_gb:.1f} GiB on profile {hw.name}"
    else:
        where = f"{size(fit.budget)} on each of {hw.world_size} x {hw.name} ({hw.strategy})"
    head = f"{fit.plan.method.name} needs {size(est.peak)} at peak ({est.phase}) of {where}"
    if fit.fits:
        return f"fits: {head}"
    fix = cheapest_fix(fit.plan, shape)
    advice = f"cheapest fix: {fix[0]} (needs {size(fix[1].estimate.peak)})" if fix else "no single change makes it fit"
    return f"does not fit: {head}; {advice}"


def enforce(plan, shape: ModelShape, *, force: bool = False) -> Fit:
    """Refuse (UserError, one line) a plan that will not fit its profile, unless ``force``."""
    fit = assess(plan, shape, eval_lengths(plan))
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
