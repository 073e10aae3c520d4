"""The zero-shot baseline: the recipe's base model evaluated on the recipe's eval split without tuning.

For classification with a causal LM (SmolLM2, Llama...) that is the language model reading a prompt
and each label scored by its likelihood (``tasks.classification_prompt``, template
``task.zero_shot_prompt``). For classification with an encoder and for NER it is the model with its
freshly initialised task head (seeded by ``train.seed``), evaluated through the task's own
``evaluate``: chance level, what tuning starts from. For chat it is the untouched model's eval loss and
perplexity. The recipe's method is ignored: the base model is loaded in full precision,
as ``full`` fine-tuning would start from it, and nothing trains. It writes a run directory like
``adapterkit run`` does (``run.json``, ``metrics.json``, ``recipe.toml``), with method ``zero-shot``,
no trainable parameters and no saved weights, so a comparison reads it like any other run.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import loading, measure, rundir
from .plan import load_recipe
from .preflight import preflight
from .recipe import Recipe, recipe_to_toml

METHOD_NAME = "zero-shot"
BASE_METHOD = {"name": "full"}  # plan and load the base model as full fine-tuning would, in full precision


def base_recipe(recipe: Recipe | str | Path, overrides=None) -> Recipe:
    if isinstance(recipe, Recipe):
        from .recipe import NamedSection

        return load_recipe(recipe, overrides).model_copy(update={"method": NamedSection(**BASE_METHOD)})
    if isinstance(overrides, dict):
        return load_recipe(recipe, {**overrides, "method": dict(BASE_METHOD)})
    return load_recipe(recipe, [*(overrides or []), f"method={{name = {BASE_METHOD['name']!r}}}"])


def evaluate_base(recipe: Recipe | str | Path, *, overrides=None, output: str | Path | None = None,
                  overwrite: bool = False):
    """Evaluate the untuned base model; returns an ``api.RunResult``."""

    threshold = measure.allocator_setting()
    checked = preflight(base_recipe(recipe, overrides), memory="skip")  # nothing trains: no training-memory verdict
    plan, config = checked.plan, checked.model_config
    recipe = plan.recipe
    if plan.hardware.device == "cpu":
        measure.pin_mmap_threshold(threshold)  # as adapterkit run does, so peak RSS compares with the tuned rows
    run_dir = Path(output) if output else rundir.default_run_dir(f"{recipe.name}-{METHOD_NAME}")
    resolved = {"method": plan.method_options.model_dump(), "task": plan.task_options.model_dump()}
    with rundir.claim(run_dir, recipe_to_toml(recipe, resolved), overwrite=overwrite):
        # A task may evaluate some base models its own way (classification: a causal LM through a prompt).
        prompted_class = getattr(plan.task, "zero_shot_auto_class", lambda config: None)(config)
        return _evaluate(plan, run_dir, prompted_class)


def _evaluate(plan, run_dir: Path, prompted_class: str | None):
    from transformers import set_seed

    from .api import RunResult, evaluate

    recipe = plan.recipe
    clock = measure.Stopwatch()
    started = time.time()
    with clock.phase("load"):
        tokenizer = loading.load_tokenizer(recipe.model, plan.where)
        data = plan.task.load_data(plan)
        set_seed(recipe.train.seed)  # the fresh task head's initialisation
        if prompted_class:
            model = loading.load_model(plan, tokenizer, auto_class=prompted_class)
        else:
            model = loading.load_model(plan, tokenizer, plan.task.model_kwargs(data))
        model.requires_grad_(False)
    counts = measure.parameter_counts(model)
    with clock.phase("eval"):
        if prompted_class:
            metrics = plan.task.zero_shot_evaluate(plan, model, tokenizer, data)
        else:
            metrics = evaluate(plan, model, tokenizer, data, run_dir)
    clock.seconds["train"] = 0.0
    info = rundir.run_info(
        plan, data, counts, clock, started,
        method=METHOD_NAME, artifact=None, learning_rate=None, checkpoint_bytes=0, steps=0, train_examples=0,
        train_loss=None, train_tokens=0, train_tokens_per_second=None, train_samples_per_second=None,
    )
    rundir.write_json(run_dir / "metrics.json", metrics)
    rundir.write_json(run_dir / "run.json", info)
    return RunResult(run_dir, metrics, info)
