"""The spine of a run: recipe -> plan -> load -> wrap -> train -> evaluate -> rundir.

``run`` is what ``adapterkit run`` calls; ``evaluate_run`` and ``generate`` reopen a finished run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import curves, distributed, loading, measure, padded_eval, rundir, sampling, tracking
from .errors import UserError
from .hardware.attention import attention_kernels
from .methods.base import WrapContext
from .plan import Plan, load_recipe, make_plan
from .preflight import preflight
from .progress import quiet, without_bars
from .recipe import Recipe, recipe_to_toml
from .tasks.labels import as_trained
from .training import trainable_in_fp32, warn_uneven_last_batch, whole_run_loss

log = logging.getLogger("adapterkit")


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    info: dict[str, Any]

    @property
    def artifact_dir(self) -> Path:
        return self.run_dir / self.info["artifact"]


def prepare_model(plan: Plan, tokenizer, data, config=None):
    """Load the base model for the plan's task and let the method wrap it (``config``: the preflight's)."""
    from transformers import set_seed

    set_seed(plan.recipe.train.seed)
    model = loading.load_model(plan, tokenizer, plan.task.model_kwargs(data), config=config)
    ctx = WrapContext(peft_task_type=plan.task.peft_task_type, model_path=loading.model_path(plan.recipe.model),
                      gradient_checkpointing=plan.hardware.gradient_checkpointing,
                      total_steps=total_steps(plan.recipe.train, data))
    if plan.recipe.model.adapter:  # continue a saved adapter (checked by the preflight)
        from .methods.continuing import continue_adapter

        model = continue_adapter(plan.method, model, Path(plan.recipe.model.adapter))
    else:
        model = plan.method.wrap(model, plan.method_options, ctx)
    trainable_in_fp32(model)  # a task head copied from a bf16-stored base (peft's modules_to_save) trains in fp32
    from .methods.fused_lora_sum import fuse_lora_sums  # imports torch and peft: not on the CLI's light path

    fuse_lora_sums(model)  # LoRA's update added in one addmm outside autocast: two output-sized tensors fewer per layer
    if plan.hardware.precision in ("bf16", "fp16"):
        from .methods.input_casts import skip_input_casts_under_autocast  # imports torch: not on the CLI's light path

        skip_input_casts_under_autocast(model)  # no fp32 copy of each adapted layer's input (see the module)
    return model


def total_steps(train, data) -> int | None:
    """Optimizer steps the run will take: ``max_steps``, else ``epochs`` over the train split (the Trainer's
    count: an epoch's last, shorter accumulation of batches is one more step); None when unknown (eval-only)."""
    import math

    if train.max_steps > 0:
        return train.max_steps
    examples = getattr(data, "train", None)
    if examples is None or not hasattr(examples, "__len__"):  # a stream needs max_steps (checked with its data)
        return None
    per_epoch = max(math.ceil(math.ceil(len(examples) / train.batch_size) / train.grad_accum), 1)
    return max(math.ceil(train.epochs * per_epoch), 1)


def run(recipe: Recipe | str | Path, *, overrides: dict | list | None = None, output: str | Path | None = None,
        overwrite: bool = False, force: bool = False, callbacks: tuple = (), progress: bool = True) -> RunResult:
    """Train and evaluate one recipe; returns its metrics and the run directory. ``callbacks``: extra
    ``transformers.TrainerCallback``s (``adapterkit tune`` reports each eval to its trial with one). ``progress``:
    False turns the progress bars off (``progress.py``).

    Everything that can fail on the user's input (recipe, model config, memory plan, data, weights) fails
    before the run directory is written: it appears when training starts."""
    # plan, model config, compatibility, memory verdict: refuses a recipe that will not fit, unless force
    distributed.quiet_other_ranks()  # several ranks (torchrun): rank 0 logs, claims and writes the run directory
    threshold = measure.allocator_setting()  # ADAPTERKIT_MALLOC, checked before anything is read
    checked = preflight(load_recipe(recipe, overrides), force=force)
    plan, recipe = checked.plan, checked.plan.recipe
    run_dir = Path(output) if output else rundir.default_run_dir(recipe.name)
    if distributed.is_main():
        rundir.check_output(run_dir, overwrite=overwrite)
    if plan.hardware.device == "cpu":
        measure.pin_mmap_threshold(threshold)
    clock = measure.Stopwatch()
    started = time.time()
    with clock.phase("load"), quiet(progress):
        tokenizer = loading.load_tokenizer(recipe.model, plan.where)
        data = plan.task.load_data(plan)
        if recipe.model.adapter:  # a continued adapter's task head numbers its classes as it was trained
            data = as_trained(data, rundir.trained_labels(Path(recipe.model.adapter)), "the adapter (model.adapter)",
                              plan.where)
        model = prepare_model(plan, tokenizer, data, checked.model_config)
    resolved = {"method": plan.method_options.model_dump(), "task": plan.task_options.model_dump()}
    # How many ranks ran it is not part of the recipe (run.json's "hardware" records it): a run checkpointed
    # on 2 ranks resumes on 1 and the other way round (the global batch, the data order and the steps are the same)
    launch = {"devices": None, "nodes": 1, "strategy": "auto"}
    text = recipe_to_toml(plan.recipe.model_copy(update={"hardware": plan.recipe.hardware.model_copy(update=launch)}),
                          resolved)
    claim = lambda folder: rundir.claim(folder, text, overwrite=overwrite)  # noqa: E731
    with distributed.claimed(claim, run_dir, plan.hardware) as (run_dir, resume), attention_kernels(plan.hardware.device), \
            quiet(progress):
        return _train_and_evaluate(plan, tokenizer, data, model, run_dir, resume, clock, started, callbacks, progress)


def _train_and_evaluate(plan: Plan, tokenizer, data, model, run_dir: Path, resume: Path | None,
                        clock: measure.Stopwatch, started: float, extra_callbacks: tuple = (), progress: bool = True,
                        ) -> RunResult:
    """Train (from ``resume``, a checkpoint, if given), evaluate and save into ``run_dir``."""
    from . import callbacks

    recipe = plan.recipe
    counts = measure.parameter_counts(model)
    log.info("%s: %s trains %.2f%% of %.1fM parameters on %s (%s)", recipe.name, plan.method.name,
             100 * counts["trainable_share"], counts["total_params"] / 1e6, plan.hardware.name, plan.hardware.precision)
    trainer = plan.task.build_trainer(plan, model, tokenizer, data, run_dir)
    warn_uneven_last_batch(plan, data)
    if plan.method.prepare_trainer is not None:  # the method's own optimizer or per-step callback (LoRA+, AdaLoRA)
        plan.method.prepare_trainer(trainer, plan.method_options)
    padded_eval.exact_eval_loss(trainer)  # several ranks: eval_loss counts each eval row once, as one process does
    sampling.seed_by_epoch(trainer, recipe.train.seed)  # each epoch's order from the seed alone: a resumed run reads the same
    resumed_at = rundir.checkpoint_step(resume) if resume else None
    logs = tracking.track(trainer, plan, run_dir, resumed_at)  # train.report_to -> RUN_DIR/logs; early stopping
    # atomic checkpoints (also every train.save_minutes), stop on NaN/inf, Ctrl-C/SIGTERM -> checkpoint
    interrupt = callbacks.attach(trainer, run_dir, recipe.train.save_minutes)
    for callback in extra_callbacks:
        trainer.add_callback(callback)
    if not progress:
        without_bars(trainer)
    with clock.phase("train"), interrupt.catching_signals():
        train_output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    with interrupt.finishing():  # a first Ctrl-C/SIGTERM now waits for the results, a second one stops
        with clock.phase("eval"):
            metrics = plan.task.evaluate(plan, trainer, data, run_dir)  # every rank evaluates its share
        if not distributed.is_main():
            return RunResult(run_dir, metrics, {})
        with clock.phase("save"):
            folder = rundir.save_trained(plan, trainer.model, tokenizer, data.labels, run_dir)
    rundir.write_json(run_dir / "history.json", trainer.state.log_history)
    drawn = curves.draw(trainer.state.log_history, run_dir / "curves", recipe.name)
    log.info("curves: %s%s", ", ".join(p.name for p in drawn) or "none",
             f"; tensorboard --logdir {logs}" if recipe.train.report_to else "")
    train_seconds = clock.seconds["train"]
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    info = rundir.run_info(
        plan, data, counts, clock, started,
        method=plan.method.name,
        artifact=folder.name,
        learning_rate=plan.learning_rate,
        checkpoint_bytes=measure.directory_size_bytes(folder),
        steps=trainer.state.global_step,
        resumed_from=resume.name if resume else None,
        train_examples=len(data.train) if hasattr(data.train, "__len__") else None,  # None: streamed
        train_loss=whole_run_loss(trainer.state.log_history, float(train_output.training_loss), resumed_at,
                                  trainer.state.global_step) if resumed_at else float(train_output.training_loss),
        train_tokens=tokens,
        train_tokens_per_second=tokens / train_seconds if train_seconds else None,
        train_samples_per_second=samples_per_second(trainer, train_output.metrics.get("train_samples_per_second")),
    )
    rundir.write_json(run_dir / "metrics.json", metrics)
    rundir.write_json(run_dir / "run.json", info)
    return RunResult(run_dir, metrics, info)


def samples_per_second(trainer, reported: float | None) -> float | None:
    """The Trainer's ``train_samples_per_second``, per global batch: in a ``max_steps`` run it counts steps x
    per-device batch x ranks, and where accelerate splits each global batch across the ranks (``split_batches``,
    strategies.py) the per-device batch *is* the global one, so the figure came out ranks times too high."""
    if reported and trainer.args.max_steps > 0 and trainer.accelerator.split_batches:
        return reported / trainer.args.world_size
    return reported


def finished_plan(run_dir: Path, info: dict[str, Any], overrides: dict | None = None) -> Plan:
    """The plan of a finished run (its recipe.toml, with ``overrides``; ``info``: its ``rundir.read_run``), once its
    trained artifact is checked against the files its method's ``save`` writes (``Method.saved_files``,
    ``rundir.check_artifact``) and the peft tuner it saves (``Method.peft_type``): before any weight is loaded."""
    from .methods.peft_tuner import check_tuner

    plan = make_plan(load_recipe(Path(run_dir) / "recipe.toml", overrides))
    if info.get("artifact"):
        rundir.check_artifact(Path(run_dir), info["artifact"], plan.method.saved_files)
        check_tuner(plan.method, Path(run_dir) / info["artifact"])  # the peft tuner its method saves
    return plan


def run_tokenizer(plan: Plan, folder: Path):
    """The tokenizer a finished run saved in ``folder``, as its task has the trained model prompted (``task.system_prompt``
    in a chat run's template: the run's model answers as it was trained, in every place that renders the template)."""
    from transformers import AutoTokenizer

    from .methods.base import reading_artifact

    with reading_artifact(folder):
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ship = getattr(plan.task, "ship_tokenizer", None)
    if ship is not None:
        ship(tokenizer, plan.task_options)
    return tokenizer


def reopen(run_dir: str | Path, overrides: dict | None = None) -> tuple[Plan, Any, Any, Any]:
    """The plan, tokenizer, trained model and task data of a finished run."""
    run_dir = Path(run_dir)
    info = rundir.read_run(run_dir)
    if not info.get("artifact"):
        raise UserError(f"method {info.get('method')!r} saved no trained weights to reopen", where=str(run_dir))
    plan = finished_plan(run_dir, info, overrides)
    folder = run_dir / info["artifact"]
    tokenizer = run_tokenizer(plan, folder)
    data = plan.task.load_data(plan)
    data = as_trained(data, rundir.trained_labels(folder), "the run", str(run_dir))
    base = loading.load_model(plan, tokenizer, plan.task.model_kwargs(data), training=False)
    return plan, tokenizer, plan.method.load(base, folder), data


def evaluate(plan: Plan, model, tokenizer, data, run_dir: Path, results_dir: Path | None = None) -> dict[str, Any]:
    """The evaluate-only shell (zero-shot, ``adapterkit eval``): the task's trainer without a train split,
    and its metrics. ``results_dir`` receives the task's extra files (samples, reports); default ``run_dir``."""
    eval_only = data.for_eval()
    trainer = plan.task.build_trainer(plan, model, tokenizer, eval_only, run_dir)
    padded_eval.exact_eval_loss(trainer)
    tracking.untrack(trainer)
    return plan.task.evaluate(plan, trainer, eval_only, results_dir or run_dir)


def evaluate_run(run_dir: str | Path, data: str | None = None) -> dict[str, Any]:
    """Re-evaluate a finished run, on its own eval split or on ``data`` (a file or dataset name, ``eval --data``)."""
    from contextlib import nullcontext

    named = given_by("--data", data, f"{Path(run_dir) / 'recipe.toml'}: data.eval") if data else nullcontext()
    with named:
        plan, tokenizer, model, task_data = reopen(run_dir, {"data.eval": data} if data else None)
        return evaluate(plan, model, tokenizer, task_data, Path(run_dir) / "reeval", Path(run_dir))


@contextmanager
def given_by(option: str, value: str, field: str) -> Iterator[None]:
    """Errors about a recipe field that the command-line ``option`` set to ``value`` name ``option`` instead (and
    ``value``, unless the message does): ``eval --data`` overrides the run recipe's data.eval, and the user typed
    --data, not that field. ``field`` is the ``where`` the data code gives them (``<recipe>: data.eval``), which a
    few extend (a datasets folder: ``<recipe>: data.eval (<folder>)``). Errors naming a file and line pass unchanged."""
    try:
        yield
    except UserError as err:
        if not (err.where or "").startswith(field):
            raise
        message = err.message if value in err.message else f"{value!r}: {err.message}"
        raise UserError(message, where=option + err.where[len(field):]) from None


def generate(run_dir: str | Path, prompt: str, max_new_tokens: int = 64, safety=None) -> str:
    """Answer ``prompt`` with a finished chat run; ``safety`` (a ``serve.safety.SafetyFilter``) replaces a
    blocked prompt or answer with its refusal."""
    if safety is not None and safety.blocked(prompt, "input"):
        return safety.refusal
    plan, tokenizer, model, _ = reopen(run_dir)
    answer = getattr(plan.task, "generate", None)
    if answer is None:
        raise UserError(f"task {plan.task.name!r} does not generate text", where=str(run_dir))
    text = answer(model, tokenizer, [{"role": "user", "content": prompt}], max_new_tokens)
    return safety.refusal if safety is not None and safety.blocked(text, "output") else text
