"""One comparison result per (method, seed): the JSON files ``adapterkit compare`` writes and
``adapterkit report`` reads, at ``DIR/results/<method>-seed<k>.json``.

Schema (``schema = "adapterkit.result/1"``); every key is always present, ``null`` when unknown
(a skipped run has only the identifying keys, ``status`` and ``error`` filled)::

    schema                   "adapterkit.result/1"
    status                   "ok" | "failed" | "skipped" | "pruned" (``adapterkit tune``: stopped early,
                             its metrics are those at the step it stopped)
    error                    why it was skipped (the planning check's message) or how it failed
                             (the last line the run printed to stderr); null when ok
    method                   method name; "zero-shot" is the base model evaluated without tuning
    seed                     train.seed of the run
    options                  the method's resolved options (defaults filled in); {} for zero-shot
    recipe, task, model      recipe name, task name, model name as written in the recipe
    primary_metric           key in ``quality`` the comparison ranks by (the task's), e.g. "eval_macro_f1"
    greater_is_better        whether a larger primary metric is better (false for eval_loss)
    quality                  {metric: float}: the task's scalar eval metrics (accuracy, macro-F1,
                             seqeval precision/recall/F1, eval loss, perplexity ...)
    details                  {name: table}: the task's nested reports (classification "per_label",
                             NER "per_type"), as in the run's metrics.json
    trainable_params         parameters that received gradients (0 for zero-shot)
    total_params             all parameters of the wrapped model
    trainable_share          trainable_params / total_params
    checkpoint_bytes         size on disk of what the run saved (adapter/ or model/); 0 for zero-shot
    steps                    optimizer steps taken
    train_examples, eval_examples
    wall_seconds             the run from recipe to saved artifacts (load + train + eval + save)
    train_seconds            the training loop alone
    train_tokens_per_second  non-padding input tokens seen per training second
    train_samples_per_second as reported by the Trainer
    peak_rss_mib             resident-set high-water mark of the run's own process (each run is a
                             separate process, so this is that run's alone)
    cuda_max_allocated_mib   torch.cuda.max_memory_allocated (null on CPU)
    cuda_max_reserved_mib    torch.cuda.max_memory_reserved (null on CPU)
    device                   one line: CPU model and cores, or GPU name
    hardware                 the resolved hardware profile (device, precision, ...)
    versions                 python, torch, transformers, peft, trl, ... versions
    git_commit               adapterkit's commit, if installed from a checkout
    run_dir                  the run directory, relative to the comparison folder
    command                  the command line that produced the run
    loss_curve               [[step, training loss], ...] from the run's history.json (null when it has none)

Everything is built from the run directory's ``run.json`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .curves import TIMINGS, series

SCHEMA = "adapterkit.result/1"
STATUSES = ("ok", "failed", "skipped", "pruned")  # pruned: a tune trial stopped early by the search
ZERO_SHOT = "zero-shot"

KEYS = ("schema", "status", "error", "method", "seed", "options", "recipe", "task", "model", "primary_metric",
        "greater_is_better", "quality", "details", "trainable_params", "total_params", "trainable_share",
        "checkpoint_bytes", "steps", "train_examples", "eval_examples", "wall_seconds", "train_seconds",
        "train_tokens_per_second", "train_samples_per_second", "peak_rss_mib", "cuda_max_allocated_mib",
        "cuda_max_reserved_mib", "device", "hardware", "versions", "git_commit", "run_dir", "command", "loss_curve")

# Trainer bookkeeping that metrics.json may carry but that is not a quality measure.
_NOT_QUALITY = {*TIMINGS, "epoch"}


def result_name(method: str, seed: int) -> str:
    return f"{method}-seed{seed}"


def empty(*, status: str, method: str, seed: int, error: str | None = None, **known: Any) -> dict[str, Any]:
    """A result with every key present; ``known`` fills some of them."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    result: dict[str, Any] = dict.fromkeys(KEYS)
    result.update(schema=SCHEMA, status=status, error=error, method=method, seed=seed, quality={}, details={},
                  options={})
    unknown = set(known) - set(KEYS)
    if unknown:
        raise KeyError(f"not in the result schema: {sorted(unknown)}")
    result.update(known)
    return result


def task_ranking(task_name: str) -> tuple[str | None, bool]:
    """(primary metric, greater is better) of a registered task; (None, True) if it is unknown."""
    from .tasks import TASKS

    if task_name not in TASKS:
        return None, True
    task = TASKS.get(task_name)
    return task.primary_metric, task.greater_is_better


def from_run(run_dir: Path, *, method: str, seed: int, relative_to: Path | None = None,
             command: list[str] | None = None, device: str | None = None) -> dict[str, Any]:
    """A result from a finished run directory's run.json and metrics.json."""
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    options = {k: v for k, v in resolved_method(run_dir, info).items() if k != "name"}
    primary, greater = task_ranking(info.get("task", ""))
    quality = {k: float(v) for k, v in metrics.items()
               if k.startswith("eval_") and k not in _NOT_QUALITY and isinstance(v, (int, float))}
    details = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    copied = {k: info.get(k) for k in ("trainable_params", "total_params", "trainable_share", "checkpoint_bytes",
                                       "steps", "train_examples", "eval_examples", "wall_seconds",
                                       "train_tokens_per_second", "train_samples_per_second", "peak_rss_mib",
                                       "cuda_max_allocated_mib", "cuda_max_reserved_mib", "hardware", "versions",
                                       "git_commit")}
    shown_dir = os.path.relpath(run_dir, relative_to) if relative_to else str(run_dir)
    history = run_dir / "history.json"
    curve = [list(p) for p in series(json.loads(history.read_text(encoding="utf-8")), "loss")] \
        if history.is_file() else None
    return empty(status="ok", method=method, seed=seed, options=options, recipe=info.get("recipe"),
                 task=info.get("task"), model=info.get("model"), primary_metric=primary, greater_is_better=greater,
                 quality=quality, details=details, train_seconds=(info.get("phase_seconds") or {}).get("train"),
                 device=device or describe_device(info.get("hardware") or {}), run_dir=shown_dir, command=command,
                 loss_curve=curve, **copied)


def resolved_method(run_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """The [method] table of the run's recipe.toml (defaults filled in), else of run.json's recipe."""
    import tomllib

    path = run_dir / "recipe.toml"
    if path.is_file():
        return tomllib.loads(path.read_text(encoding="utf-8")).get("method", {})
    return (info.get("resolved_recipe") or {}).get("method") or {}


def describe_device(hardware: dict[str, Any]) -> str:
    """One line for the report: the GPU the profile detected, or this machine's CPU model and cores."""
    if hardware.get("device") == "cuda":
        name = hardware.get("name", "cuda")
        return f"{name}, {hardware.get('memory_gb', 0):.0f} GiB x {hardware.get('devices', 1)}"
    from .hardware.detect import cpu_flags, cpu_model
    from .hardware.precision import cpu_kind

    memory = f", {hardware['memory_gb']:.0f} GiB RAM" if hardware.get("memory_gb") else ""
    precision = f", {hardware['precision']}" if hardware.get("precision") else ""  # none: a benchmark of several
    return f"CPU {cpu_model()} ({cpu_kind(cpu_flags())}), {os.cpu_count()} cores{memory}{precision}"


def check(result: dict[str, Any]) -> list[str]:
    """Problems with a result against the schema (empty list: it conforms)."""
    problems = [f"missing key {k!r}" for k in KEYS if k not in result]
    problems += [f"unknown key {k!r}" for k in result if k not in KEYS]
    if result.get("schema") != SCHEMA:
        problems.append(f"schema is {result.get('schema')!r}, expected {SCHEMA!r}")
    if result.get("status") not in STATUSES:
        problems.append(f"status {result.get('status')!r} not in {STATUSES}")
    if result.get("status") == "ok":
        for key in ("trainable_params", "total_params", "wall_seconds", "peak_rss_mib", "primary_metric"):
            if result.get(key) is None:
                problems.append(f"ok result lacks {key!r}")
        if result.get("primary_metric") not in (result.get("quality") or {}):
            problems.append(f"primary metric {result.get('primary_metric')!r} not in quality")
    elif not result.get("error"):
        problems.append(f"{result.get('status')} result has no error message")
    return problems


def write(path: Path, result: dict[str, Any]) -> None:
    from .rundir import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)


def read_dir(folder: Path) -> list[dict[str, Any]]:
    """Every result JSON in ``folder/results`` (or in ``folder`` itself), sorted by file name."""
    from .errors import UserError

    folder = Path(folder)
    where = folder / "results" if (folder / "results").is_dir() else folder
    found = []
    for path in sorted(where.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"unreadable result file: {err}", where=str(path)) from None
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            found.append(data)
    if not found:
        raise UserError("no adapterkit result files (results/*.json) here", where=str(folder))
    return found
