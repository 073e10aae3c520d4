"""Recipe -> Plan: resolve the method and task, validate their options, pick the hardware profile and
the learning rate, and reject combinations that cannot work before any weight is loaded.

A plan is made for a concrete method; ``method.name = "auto"`` is resolved before, by the preflight
(``adapterkit.preflight``), which needs the memory estimate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .data.sources import check_sources
from .errors import UserError
from .hardware.profiles import Hardware
from .methods.base import Method, MethodOptions, missing_package
from .recipe import Recipe, describe_validation_error, read_recipe
from .tasks.base import Task, TaskOptions

log = logging.getLogger("adapterkit")
AUTO = "auto"  # method.name = "auto": the preflight picks a method by the memory plan (memory.choose_method)


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    method: Method
    method_options: MethodOptions
    task: Task
    task_options: TaskOptions
    hardware: Hardware
    learning_rate: float

    @property
    def where(self) -> str:
        return self.recipe.source


def _options(record, section, section_name: str, source: str):
    try:
        return record.options(**section.options)
    except ValidationError as err:
        detail = describe_validation_error(err, prefix=section_name)
        allowed = ", ".join(["name", *record.options.model_fields])
        raise UserError(f"{detail} (allowed keys for {record.name!r}: {allowed})", where=source) from None


def load_recipe(path, overrides: dict[str, Any] | list[str] | None = None) -> Recipe:
    """Read a recipe file and validate it whole: its sections and its method's and task's options. ``path`` may
    be a ``Recipe`` object: it is validated again with ``overrides`` applied (an object edited in code, e.g. with
    pydantic's ``model_copy``, which does not validate)."""
    if isinstance(path, Recipe):
        from .overrides import apply_overrides
        from .recipe import recipe_from_dict

        data = apply_overrides(path.model_dump(), overrides)
        recipe = recipe_from_dict(data, source=path.source, name=path.name)
    else:
        recipe = read_recipe(path, overrides)
    validate_named_options(recipe)
    return recipe


def validate_named_options(recipe: Recipe) -> tuple[Any, Any, Any, Any]:
    """Method and task records with their validated options. Imports no heavy library.

    For ``method.name = "auto"`` the method and its options are (None, None): they are chosen, and their
    options validated, when the plan is made."""
    from .methods import METHODS
    from .tasks import TASKS

    task = TASKS.get(recipe.task.name, where=f"{recipe.source}: task.name")
    task_options = _options(task, recipe.task, "task", recipe.source)
    if recipe.method.name == AUTO:
        return None, None, task, task_options
    method = METHODS.get(recipe.method.name, where=f"{recipe.source}: method.name")
    method_options = _options(method, recipe.method, "method", recipe.source)
    if method.needs.tasks is not None and task.name not in method.needs.tasks:
        raise UserError(f"method {method.name!r} does not suit task {task.name!r} (it suits: "
                        f"{', '.join(method.needs.tasks)})", where=f"{recipe.source}: method.name")
    return method, method_options, task, task_options


def check_packages(method, source: str) -> None:
    reason = missing_package(method)
    if reason:
        raise UserError(reason, where=f"{source}: method.name")


def with_profile_defaults(recipe: Recipe, hardware) -> Recipe:
    """The profile's batch size and accumulation, as a pair, when the recipe's ``[train]`` sets neither."""
    keys = ("batch_size", "grad_accum")
    if set(keys) & recipe.train.model_fields_set:
        return recipe
    defaults = {key: getattr(hardware, key) for key in keys if getattr(hardware, key) is not None}
    return recipe.model_copy(update={"train": recipe.train.model_copy(update=defaults)}) if defaults else recipe


def make_plan(recipe: Recipe) -> Plan:
    """The plan for a recipe with a concrete method (``auto`` is resolved by the preflight)."""
    from .hardware import resolve

    if recipe.method.name == AUTO:
        raise UserError("method auto is chosen by the preflight (adapterkit.preflight), which reads the model's "
                        "config; make_plan takes a concrete method", where=f"{recipe.source}: method.name")
    method, method_options, task, task_options = validate_named_options(recipe)
    check_packages(method, recipe.source)
    check_sources(recipe.data, recipe.source)  # data files exist, before anything is loaded or written
    hardware = resolve(recipe.hardware, recipe.source, task=recipe.task.name)
    recipe = with_profile_defaults(recipe, hardware)
    if hardware.precision not in hardware.dtypes:
        raise UserError(f"precision {hardware.precision} is not supported by profile {hardware.name!r} "
                        f"(supported: {', '.join(hardware.dtypes)})", where=f"{recipe.source}: hardware.precision")
    if method.needs.quantization and not hardware.bnb_4bit:
        raise UserError(f"method {method.name!r} needs 4-bit kernels, which profile {hardware.name!r} lacks",
                        where=f"{recipe.source}: method.name")
    if method.needs.injects_past_key_values and hardware.gradient_checkpointing:
        raise UserError(f"method {method.name!r} does not work with gradient checkpointing (peft #869); "
                        "set hardware.gradient_checkpointing = false", where=f"{recipe.source}: method.name")
    lr = recipe.train.learning_rate or method.default_learning_rate
    return Plan(recipe, method, method_options, task, task_options, hardware, lr)


def check_model(plan: Plan, model_config: Any) -> None:
    """Checks that need the model's config (cheap to load) but no weights: raises the first refusal."""
    refusal = preflight_refusal(plan.method, plan.method_options, plan.task, plan.task_options, model_config)
    if refusal:
        reason, key = refusal
        raise UserError(reason, where=f"{plan.where}: {key}")


def preflight_refusal(method, method_options, task, task_options, model_config) -> tuple[str, str] | None:
    """(one-line reason, recipe key) for the first rule this model's config breaks, or None.

    The rules: the task's model class exists for the model type, the task's own ``check_model`` (optional)
    and the method's ``check_model``, then the task's max_length against the model's positions."""
    reason = head_reason(task, model_config)
    if reason:
        return reason, "task.name"
    task_check = getattr(task, "check_model", None)
    reason = task_check(task_options, model_config) if task_check is not None else None
    if reason:
        return reason, "task.name"
    if method.check_model is not None:
        reason = method.check_model(method_options, model_config, task.name)
        if reason:
            return reason, "method.name"
    max_len = getattr(task_options, "max_length", None)
    limit = getattr(model_config, "max_position_embeddings", None)
    if max_len and limit and max_len > limit:
        return f"task.max_length {max_len} exceeds the model's maximum of {limit} positions", "task.max_length"
    return None


def head_reason(task, model_config) -> str | None:
    """The task's model class (its Auto class) must exist for this model type."""
    import transformers

    auto = getattr(transformers, task.auto_class)
    if getattr(model_config, "auto_map", None) or type(model_config) in auto._model_mapping:
        return None
    return (f"task {task.name!r} needs a model with a {task.auto_class} head; model type "
            f"{model_config.model_type!r} has none")
