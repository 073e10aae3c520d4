"""Recipe -> Plan: resolve the method and task, validate their options, pick the hardware profile and
the learning rate, and reject combinations that cannot work before any weight is loaded."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .errors import UserError
from .recipe import Recipe, describe_validation_error


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    method: Any  # methods.base.Method
    method_options: Any
    task: Any  # tasks.base.Task
    task_options: Any
    hardware: Any  # hardware.Hardware
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


def validate_named_options(recipe: Recipe) -> tuple[Any, Any, Any, Any]:
    """Method and task records with their validated options. Imports no heavy library."""
    from .methods import METHODS
    from .tasks import TASKS

    method = METHODS.get(recipe.method.name, where=f"{recipe.source}: method.name")
    task = TASKS.get(recipe.task.name, where=f"{recipe.source}: task.name")
    method_options = _options(method, recipe.method, "method", recipe.source)
    task_options = _options(task, recipe.task, "task", recipe.source)
    if method.needs.tasks is not None and task.name not in method.needs.tasks:
        raise UserError(f"method {method.name!r} does not suit task {task.name!r} (it suits: "
                        f"{', '.join(method.needs.tasks)})", where=f"{recipe.source}: method.name")
    return method, method_options, task, task_options


def check_packages(method, source: str) -> None:
    for module in method.needs.packages:
        if importlib.util.find_spec(module) is None:
            raise UserError(f"method {method.name!r} needs the package {module!r}; install it "
                            f"(pip install {module})", where=f"{source}: method.name")


def make_plan(recipe: Recipe) -> Plan:
    from .hardware import resolve

    method, method_options, task, task_options = validate_named_options(recipe)
    check_packages(method, recipe.source)
    hardware = resolve(recipe.hardware, recipe.source)
    if method.needs.quantization and not hardware.bnb_4bit:
        raise UserError(f"method {method.name!r} needs 4-bit kernels, which profile {hardware.name!r} lacks",
                        where=f"{recipe.source}: method.name")
    if method.needs.injects_past_key_values and hardware.gradient_checkpointing:
        raise UserError(f"method {method.name!r} does not work with gradient checkpointing (peft #869); "
                        "set hardware.gradient_checkpointing = false", where=f"{recipe.source}: method.name")
    lr = recipe.train.learning_rate or method.default_learning_rate
    return Plan(recipe, method, method_options, task, task_options, hardware, lr)


def check_model(plan: Plan, model_config: Any) -> None:
    """Checks that need the model's config (cheap to load) but no weights."""
    where = f"{plan.where}: method.name"
    if plan.method.check_model is not None:
        reason = plan.method.check_model(plan.method_options, model_config, plan.task.name)
        if reason:
            raise UserError(reason, where=where)
    max_len = getattr(plan.task_options, "max_length", None)
    limit = getattr(model_config, "max_position_embeddings", None)
    if max_len and limit and max_len > limit:
        raise UserError(f"task.max_length {max_len} exceeds the model's maximum of {limit} positions",
                        where=f"{plan.where}: task.max_length")
