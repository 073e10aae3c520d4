"""``adapterkit compare``: the same recipe trained once per method and seed, each run in its own process.

Every run uses the recipe's data, split, step budget and hardware; only ``method`` and ``train.seed``
change. Method options: a recipe's ``[method]`` table holds options of its own method (``r``, ``alpha``
for lora) that other methods reject, so they apply to the recipe's own method only; every other method
runs with its defaults (``--set method.X=...`` overrides follow the same rule).

Before anything is spawned, each method goes through the same planning checks ``adapterkit run`` does
(options, packages, task fit, 4-bit kernels, the model's config, the memory plan); a method that fails them is recorded
as ``skipped`` with the reason. A run that exits non-zero is recorded as ``failed`` with the last line
it wrote to stderr, and the comparison goes on. Layout of the output folder::

    DIR/runs/<method>-seed<k>/     the run directory of each run (as ``adapterkit run`` writes it)
    DIR/logs/<method>-seed<k>.out  its stdout; .err its stderr
    DIR/results/<method>-seed<k>.json   one result per run, schema in ``adapterkit.results``
    DIR/report.md, report.html, pareto_*.png   the comparison (``adapterkit.report``)

The zero-shot row (``zero-shot-seed<k>``) is the base model evaluated without tuning (``adapterkit.zeroshot``).

The folder (``--output``) must be new, empty, or an earlier comparison's (``rundir.take``); an earlier
comparison is refused unless ``--resume`` (keep its ``ok`` results, run the rest: new methods or seeds, failed
or interrupted runs) or ``--overwrite`` (replace it) is given. ``DIR/comparison.json`` holds the recipe and
``--set`` items it was made with; ``--resume`` with others is refused, so that no report mixes two setups.
One comparison at a time writes a folder: it holds ``DIR/.lock`` (``rundir.lock``) until it ends, and a second one
into the same folder, any flag, fails at once naming the first one's pid; the kernel drops the lock of a killed
comparison, which ``--resume`` then finishes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import results, rundir
from .errors import UserError


@dataclass(frozen=True)
class Job:
    method: str  # a registered method, or results.ZERO_SHOT
    seed: int
    command: str  # the adapterkit subcommand: "run" or "zero-shot"
    overrides: tuple[str, ...]  # --set KEY=VALUE items

    @property
    def name(self) -> str:
        return results.result_name(self.method, self.seed)


def method_overrides(method: str, recipe_method: str, user_sets: list[str]) -> list[str]:
    """--set items that switch the recipe to ``method``; another method's options are dropped."""
    if method == recipe_method:
        return list(user_sets)
    kept = [s for s in user_sets if not s.strip().startswith("method.") and not s.strip().startswith("method=")]
    return [*kept, f"method={{name = {method!r}}}"]


def planning_problem(recipe_path: Path, overrides: list[str]) -> str | None:
    """Why ``adapterkit run`` would refuse this recipe before loading weights, or None."""
    from .plan import load_recipe
    from .preflight import preflight

    try:
        preflight(load_recipe(recipe_path, overrides))  # the same checks, and memory refusal, as adapterkit run
    except UserError as err:
        message = str(err)
        prefix = f"{err.where}: " if err.where else ""
        return message[len(prefix):] if prefix and message.startswith(prefix) else message
    return None


def last_line(path: Path) -> str | None:
    """The last non-empty line of a log (progress bars' carriage returns count as line ends)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else None


def spawn(cmd: list[str], out: Path, err: Path) -> tuple[int, float | None]:
    """Run ``cmd`` to completion; its exit code and its peak RSS in MiB (from wait4, where available)."""
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        try:
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                return proc.returncode, usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
            return proc.wait(), None
        except BaseException:
            proc.kill()
            proc.wait()
            raise


def _world_sets(launch: list[str]) -> list[str]:
    """``--devices 2 --nnodes 2`` -> the [hardware] overrides the planning check needs."""
    flags = dict(zip(launch[::2], launch[1::2]))
    keys = {"--devices": "hardware.devices", "--nnodes": "hardware.nodes"}
    return [f"{keys[k]}={v}" for k, v in flags.items() if k in keys]


IDENTITY = "comparison.json"


def run_job(job: Job, recipe_path: Path, out_dir: Path, device: str | None, launch=(), *,
            overwrite: bool = False) -> dict[str, Any]:
    """Train (or evaluate) one job in its own process; ``overwrite`` passes ``--overwrite`` to it (replacing a
    finished run in its folder: only when the user asked, or to redo a failed attempt of this comparison)."""
    run_dir = out_dir / "runs" / job.name
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "adapterkit", job.command, str(recipe_path)]
    for item in job.overrides:
        cmd += ["--set", item]
    cmd += ["--output", str(run_dir), *(["--overwrite"] if overwrite else []), *launch]
    err_log = logs / f"{job.name}.err"
    code, child_rss = spawn(cmd, logs / f"{job.name}.out", err_log)
    if code == 0 and (run_dir / "run.json").is_file():
        return results.from_run(run_dir, method=job.method, seed=job.seed, relative_to=out_dir, command=cmd,
                                device=device)
    return results.empty(status="failed", method=job.method, seed=job.seed,
                         error=last_line(err_log) or f"exit code {code}", peak_rss_mib=child_rss,
                         run_dir=os.path.relpath(run_dir, out_dir), command=cmd, device=device)


def default_output(recipe_path: Path) -> Path:
    return Path("runs") / f"compare-{recipe_path.stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def check_folder(folder: Path, identity: dict[str, Any], *, overwrite: bool, resume: bool, probe_lock: bool = True) -> None:
    """Refuse, writing nothing, what this comparison may not do with ``folder``: another command's output, a
    folder of the user's (``rundir.check_take``), one another live comparison is writing (unless ``probe_lock`` is
    False: this process holds the lock), an earlier comparison without --resume or --overwrite, a --resume with
    nothing to resume or with another recipe or --set."""
    if overwrite and resume:
        raise UserError("give one of --overwrite (replace the comparison) and --resume (finish or extend it)",
                        where="--resume")
    rundir.check_take(folder, "compare")
    if probe_lock and folder.is_dir():
        rundir.check_free(folder, "compare")
    held = rundir.holds_output(folder)
    if held and not (overwrite or resume):
        raise UserError("holds a comparison already; pass --resume to finish or extend it, --overwrite to replace it, "
                        "or choose another --output", where=str(folder))
    if resume and not held:
        raise UserError("--resume: no comparison to resume here", where=str(folder))
    if resume:
        try:
            stored = json.loads((folder / IDENTITY).read_text(encoding="utf-8"))
        except FileNotFoundError:
            stored = identity  # made before comparison.json existed: nothing to check against
        except (OSError, ValueError) as err:
            raise UserError(f"--resume: {IDENTITY} cannot be read ({err}); choose another --output",
                            where=str(folder)) from None
        changed = sorted(k for k in identity if stored.get(k) != identity[k]) if isinstance(stored, dict) else ["recipe"]
        if changed:
            raise UserError(f"--resume: this comparison was made with another {' and '.join(changed)}; resume it with "
                            "the same recipe and --set items, pass --overwrite to replace it, or choose another --output",
                            where=str(folder))


def clear_previous(out_dir: Path) -> None:
    """--overwrite: drop the earlier comparison's results, logs and report (its run directories are replaced
    one by one, by the runs of this comparison given ``--overwrite``)."""
    for path in [*(out_dir / "results").glob("*.json"), *(out_dir / "logs").glob("*.out"),
                 *(out_dir / "logs").glob("*.err"), out_dir / "report.md", out_dir / "report.html",
                 *out_dir.glob("pareto_*.png"), *out_dir.glob("loss_curves_*.png")]:
        path.unlink(missing_ok=True)


def kept_result(out_dir: Path, job: Job) -> dict[str, Any] | None:
    """--resume: the earlier comparison's result of ``job`` if it is ``ok`` and its run directory finished."""
    try:
        result = json.loads((out_dir / "results" / f"{job.name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(result, dict) and result.get("status") == "ok"
    return result if ok and (out_dir / "runs" / job.name / "run.json").is_file() else None


def compare(recipe: str | Path, *, methods: list[str] | None = None, seeds: list[int] = (0,),
            output: str | Path | None = None, overrides: list[str] | None = None, zero_shot: bool = True,
            echo=print, launch: list[str] = (), overwrite: bool = False, resume: bool = False) -> list[dict[str, Any]]:
    """Run every method x seed, write ``DIR/results/*.json`` and the report; returns the results.

    An earlier comparison in ``output`` is refused unless ``resume`` (its ``ok`` results are kept, the other jobs
    run) or ``overwrite`` (every job runs again and replaces its run; the old results and report are dropped).

    ``launch``: ``adapterkit run``'s launch flags (``--devices 2``, ``--nnodes`` ...), given to every training run
    (zero-shot evaluation stays one process)."""
    from .methods import METHODS
    from .plan import load_recipe
    from .report import write_report

    recipe_path = Path(recipe)
    base = load_recipe(recipe_path, overrides)  # the recipe itself must be valid
    methods = list(dict.fromkeys(methods or METHODS.names()))  # as --seeds: a method given twice runs once
    for name in methods:
        METHODS.get(name, where="--methods")  # a typo stops here, with a suggestion
    seeds = list(dict.fromkeys(seeds))
    if not seeds:
        raise UserError("give at least one seed, e.g. --seeds 0,1", where="--seeds")
    user_sets = list(overrides or [])
    out_dir = Path(output) if output else default_output(recipe_path)
    identity = {"recipe": str(recipe_path.resolve()), "sets": user_sets}
    check_folder(out_dir, identity, overwrite=overwrite, resume=resume)
    rundir.take(out_dir, "compare")
    with rundir.lock(out_dir, "compare"):  # one writer at a time, until this process ends or dies
        check_folder(out_dir, identity, overwrite=overwrite, resume=resume, probe_lock=False)  # again, holding it
        if not resume or not (out_dir / IDENTITY).is_file():
            (out_dir / IDENTITY).write_text(json.dumps(identity, indent=1) + "\n", encoding="utf-8")
        device = None
        planned: list[tuple[str, str, list[str], str | None]] = []  # method, command, overrides, skip reason
        if zero_shot:
            planned.append((results.ZERO_SHOT, "zero-shot", user_sets, None))
        for name in methods:
            sets = method_overrides(name, base.method.name, user_sets)
            reason = planning_problem(recipe_path, [*sets, *_world_sets(launch)])
            planned.append((name, "run", sets, reason))
            echo(f"plan: {name}: {'skipped: ' + reason if reason else 'ok'}")
        if overwrite:
            clear_previous(out_dir)
        done: list[dict[str, Any]] = []
        total = sum(len(seeds) for _, _, _, reason in planned if reason is None)
        count = 0
        for seed in seeds:
            for name, command, sets, reason in planned:
                job = Job(name, seed, command, (*sets, f"train.seed={seed}"))
                if reason is not None:
                    result = results.empty(status="skipped", method=name, seed=seed, error=reason, recipe=base.name,
                                           task=base.task.name, model=base.model.name)
                elif resume and (kept := kept_result(out_dir, job)) is not None:
                    count += 1
                    result = kept
                    device = device or result.get("device")
                    echo(f"[{count}/{total}] {job.name}: kept from the earlier comparison ({_summary(result)})")
                    done.append(result)
                    continue
                else:
                    count += 1
                    echo(f"[{count}/{total}] {job.name} ...")
                    started = time.time()
                    # --overwrite only where asked, or (--resume) to redo this comparison's failed attempt of the job;
                    # an interrupted one (a checkpoint, no run.json) resumes without it
                    redo = overwrite or (resume and (out_dir / "runs" / job.name / "run.json").is_file())
                    result = run_job(job, recipe_path, out_dir, device, launch if command == "run" else (), overwrite=redo)
                    device = device or result.get("device")
                    result["recipe"], result["task"], result["model"] = base.name, base.task.name, base.model.name
                    echo(f"[{count}/{total}] {job.name}: {_summary(result)} ({time.time() - started:.0f} s)")
                results.write(out_dir / "results" / f"{job.name}.json", result)
                done.append(result)
        write_report(done, out_dir)
        echo(f"report: {out_dir / 'report.md'} and {out_dir / 'report.html'}")
        return done


def _summary(result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"{result['status']}: {result['error']}"
    metric = result["primary_metric"]
    return f"{metric} {result['quality'].get(metric, float('nan')):.4f}, peak RSS {result['peak_rss_mib']:.0f} MiB"
