"""``adapterkit tune``: the search loop. Each trial is planned (and refused when the planner says it will not
fit), then run in its own process as ``adapterkit run`` would, its evals reported to the study, and its result
written in ``adapterkit.results``' schema."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import results, rundir
from ..compare import last_line, spawn
from ..errors import UserError
from .space import Dimension, _message, check_space, read_space, suggest
from .study import PRUNED_AT, open_study, parse_budget

COUNTED = ("COMPLETE", "PRUNED")  # trials that count towards --trials (failed ones are retried or re-drawn)


class StopAt:
    """Called after each trial (an Optuna callback): ``--trials`` is the study's total, whichever workers share it.
    Once the finished trials reach it this worker stops; while they and the trials running in other workers reach
    it, it waits (polling) for those to finish, or to be found dead by their heartbeat (failed and re-queued:
    ``study.py``), instead of starting one more. Counting only finished trials, each extra worker ran one trial too
    many; counting running ones without waiting, a worker killed mid-trial left the study a trial short."""

    def __init__(self, trials: int, poll_seconds: float = 5.0, deadline: float | None = None, echo=print):
        self.trials, self.poll_seconds, self.deadline, self.echo = trials, poll_seconds, deadline, echo

    def __call__(self, study, trial) -> None:
        import warnings

        import optuna

        said = False
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # a dead worker's trial is not running any more
            seen = [t.state.name for t in study.get_trials(deepcopy=False)]  # one read: a consistent count
            finished, running = sum(state in COUNTED for state in seen), seen.count("RUNNING")
            if finished >= self.trials:
                study.stop()
                return
            if finished + running < self.trials or (self.deadline and time.monotonic() > self.deadline):
                return  # room for another trial (or the budget is spent: Optuna's timeout stops the search)
            if not said:
                self.echo(f"waiting for {running} trial(s) still running to finish the {self.trials} (a trial whose "
                          "worker died is failed and re-queued once its heartbeat is stale)")
                said = True
            time.sleep(self.poll_seconds)


class TrialFailed(Exception):
    """A trial's process failed; the search records it as failed and goes on."""


def ranking(recipe, metric: str | None, direction: str | None) -> tuple[str, str]:
    """The metric to optimise (default: the task's primary one) and its direction."""
    primary, greater = results.task_ranking(recipe.task.name)
    metric = metric or primary
    if not metric:
        raise UserError(f"task {recipe.task.name!r} names no primary metric: pass --metric", where="--metric")
    if direction is None:
        lower = metric != primary and any(w in metric for w in ("loss", "perplexity"))
        direction = "maximize" if (greater if metric == primary else not lower) else "minimize"
    if direction not in ("maximize", "minimize"):
        raise UserError(f"{direction!r}: expected maximize or minimize", where="--direction")
    return metric, direction


def feasibility(recipe_path: Path, sets: list[str]) -> tuple[Any, str | None, float | None]:
    """(recipe, why it cannot run or None, predicted peak MiB) from the same checks as ``adapterkit run``."""
    from ..memory.estimate import MIB
    from ..memory.verdict import verdict
    from ..plan import load_recipe
    from ..preflight import preflight

    recipe = load_recipe(recipe_path, sets)
    try:
        fit = preflight(recipe, memory="assess").fit
    except UserError as err:
        return recipe, _message(err), None
    peak = fit.estimate.peak / MIB
    return recipe, None if fit.fits else verdict(fit, fit.shape), peak


def default_output(recipe_path: Path) -> Path:
    return Path("runs") / f"tune-{recipe_path.stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class Objective:
    """One trial: suggest, plan, run in a process, record."""

    def __init__(self, recipe_path: Path, base, space: dict[str, Dimension], user_sets: list[str], metric: str,
                 out_dir: Path, echo):
        self.recipe_path, self.base, self.space, self.user_sets = recipe_path, base, space, user_sets
        self.metric, self.out_dir, self.echo = metric, out_dir, echo

    def __call__(self, trial) -> float:
        import optuna

        name = f"trial-{trial.number:04d}"
        sets = suggest(trial, self.space, self.base, self.user_sets)
        trial.set_user_attr("sets", sets)
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        recipe, problem, peak = feasibility(self.recipe_path, sets)
        trial.set_user_attr("estimate_mib", peak)
        known = dict(recipe=self.base.name, task=recipe.task.name, model=recipe.model.name)
        if problem:
            trial.set_user_attr("infeasible", problem)
            results.write(self.out_dir / "results" / f"{name}.json", results.empty(
                status="skipped", method=recipe.method.name, seed=recipe.train.seed, error=problem, **known))
            self.echo(f"[{name}] {shown}: infeasible, not started: {problem}")
            raise optuna.TrialPruned(problem)
        self.echo(f"[{name}] {shown} ...")
        started = time.time()
        result = self._run(trial, name, sets, recipe)
        result.update(known)
        results.write(self.out_dir / "results" / f"{name}.json", result)
        value = result["quality"].get(self.metric)
        note = f"{self.metric} {value:.4f}" if value is not None else result["error"]
        self.echo(f"[{name}] {result['status']}: {note} ({time.time() - started:.0f} s)")
        if result["status"] == "failed":
            raise TrialFailed(result["error"])
        if value is None:
            raise TrialFailed(f"the run reported no {self.metric} (it has {', '.join(result['quality'])})")
        if result["status"] == "pruned":
            raise optuna.TrialPruned(result["error"])
        return value

    def _run(self, trial, name: str, sets: list[str], recipe) -> dict[str, Any]:
        run_dir = self.out_dir / "runs" / name
        logs = self.out_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "adapterkit.tune.trial", str(self.recipe_path), "--folder", str(self.out_dir),
               "--trial", str(trial.number), "--metric", self.metric, *(a for s in sets for a in ("--set", s)),
               "--output", str(run_dir), "--parent", str(os.getpid())]
        err_log = logs / f"{name}.err"
        code, rss = spawn(cmd, logs / f"{name}.out", err_log)
        seed = recipe.train.seed
        if code != 0 or not (run_dir / "run.json").is_file():
            return results.empty(status="failed", method=recipe.method.name, seed=seed,
                                 error=last_line(err_log) or f"exit code {code}", peak_rss_mib=rss,
                                 run_dir=str(run_dir.relative_to(self.out_dir)), command=cmd)
        result = results.from_run(run_dir, method=recipe.method.name, seed=seed, relative_to=self.out_dir,
                                  command=cmd)
        step = trial.storage.get_trial_user_attrs(trial._trial_id).get(PRUNED_AT)  # written by the trial process
        if step is not None:
            result.update(status="pruned", error=f"pruned at step {step} by the sampler's pruner")
        return result


def tune(recipe: str | Path, *, space: list[str] | None = None, trials: int = 8, metric: str | None = None,
         direction: str | None = None, parallel: int = 1, output: str | Path | None = None, resume: bool = False,
         budget: str | None = None, overrides: list[str] | None = None, echo=print):
    """Search ``space`` over ``trials`` trials (in total, resumed ones included); returns the Optuna study."""
    import optuna

    from ..plan import load_recipe
    from .report import write_report

    if trials < 1:
        raise UserError(f"{trials}: must be at least 1", where="--trials")
    if parallel < 1:
        raise UserError(f"{parallel}: must be at least 1", where="--parallel")
    seconds = parse_budget(budget)
    recipe_path = Path(recipe)
    user_sets = list(overrides or [])
    base = load_recipe(recipe_path, user_sets)
    dims = read_space(base, space)
    check_space(dims, base, recipe_path, user_sets)
    metric, direction = ranking(base, metric, direction)
    eval_every = base.train.eval_every
    if eval_every is None and base.train.max_steps > 0:
        eval_every = max(1, base.train.max_steps // 4)
        user_sets.append(f"train.eval_every={eval_every}")
        echo(f"evaluating every {eval_every} steps so that weak trials can be pruned (train.eval_every)")
    elif eval_every is None:
        echo("no train.eval_every: trials are not evaluated during training, so none is pruned early")
    out_dir = rundir.take(Path(output) if output else default_output(recipe_path), "tune")
    identity = {"recipe": str(recipe_path.resolve()), "space": sorted(d.describe() for d in dims.values()),
                "sets": user_sets, "metric": metric}
    study = open_study(out_dir, resume=resume, direction=direction, identity=identity, trials=trials,
                       parallel=parallel, seed=base.train.seed, eval_every=eval_every, max_steps=base.train.max_steps)
    states = tuple(getattr(optuna.trial.TrialState, s) for s in COUNTED)
    left = trials - len(study.get_trials(deepcopy=False, states=states))
    echo(f"search: {'; '.join(d.describe() for d in dims.values())}; {direction} {metric}; {left} of {trials} trials "
         f"to run{f', budget {budget}' if seconds else ''}; study {out_dir / 'study.db'}")
    try:
        if left > 0:
            study.optimize(Objective(recipe_path, base, dims, user_sets, metric, out_dir, echo), n_trials=left,
                           n_jobs=parallel, timeout=seconds, catch=(TrialFailed,),
                           callbacks=[StopAt(trials, deadline=time.monotonic() + seconds if seconds else None,
                                             echo=echo)])
    finally:
        path = write_report(study, out_dir, recipe_path, metric)
        echo(f"report: {path} and {path.with_suffix('.html')}")
    return study
