"""The Optuna study of a search, stored in ``DIR/study.db`` (SQLite): created, or reopened by ``--resume``
and by other workers pointed at the same folder.

- Sampler: TPE (multivariate, grouped, so that method-specific keys form their own sub-spaces; with a
  constant liar when trials run in parallel, so that concurrent trials do not sample the same point).
- Pruner: Hyperband over the intermediate evals (``train.eval_every``), its smallest rung one eval; with no
  eval during training nothing can be pruned early and the pruner is Optuna's ``NopPruner``.
- Heartbeat: each running trial's worker records a heartbeat; a trial whose worker died (kill -9) is failed
  once its heartbeat is stale and re-queued once with the same parameters (``RetryHeartbeatStaleTrialCallback``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from ..errors import UserError

STUDY_NAME = "adapterkit-tune"
DB = "study.db"
HEARTBEAT_SECONDS = 10
PRUNED_AT = "pruned_at_step"  # a trial's user attribute: the step at which the pruner stopped it
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_budget(text: str | None) -> float | None:
    """``"30m"`` -> 1800.0 seconds; None -> no budget."""
    if text is None:
        return None
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise UserError(f"{text!r}: expected a positive duration such as 90s, 30m, 1.5h", where="--budget")
    return float(match[1]) * _UNIT[match[2]]


def storage_url(folder: Path) -> str:
    return f"sqlite:///{(Path(folder) / DB).resolve()}"


def quiet_optuna() -> None:
    """Optuna's own per-trial log lines and its experimental-feature warnings are not the user's concern:
    ``adapterkit tune`` prints its own progress."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage")


def storage(folder: Path, *, heartbeat: bool = True):
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    quiet_optuna()
    kwargs = dict(heartbeat_interval=HEARTBEAT_SECONDS, grace_period=3 * HEARTBEAT_SECONDS,
                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1)) if heartbeat else {}
    # several processes (workers, trial processes) write to one SQLite file: wait for its lock, don't fail
    return optuna.storages.RDBStorage(storage_url(folder), engine_kwargs={"connect_args": {"timeout": 60}}, **kwargs)


def sampler(trials: int, parallel: int, seed: int):
    import optuna

    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=parallel > 1,
                                      n_startup_trials=min(10, max(2, trials // 3)))


def pruner(eval_every: int | None, max_steps: int):
    import optuna

    if not eval_every:
        return optuna.pruners.NopPruner()
    return optuna.pruners.HyperbandPruner(min_resource=eval_every, max_resource=max_steps if max_steps > 0 else "auto",
                                          reduction_factor=3)


def open_study(folder: Path, *, resume: bool, direction: str, identity: dict, trials: int, parallel: int,
               seed: int, eval_every: int | None, max_steps: int):
    """Create the study in ``folder`` (refused if one is there without ``resume``), or reopen it (refused if it
    searches something else: ``identity`` holds the recipe, space and metric it was created with)."""
    import optuna

    exists = (Path(folder) / DB).is_file()
    if exists and not resume:
        raise UserError("holds a search already; pass --resume to continue it (or to join it as another worker) "
                        "or choose another --output", where=str(folder))
    if resume and not exists:
        raise UserError(f"--resume: no search to resume here (no {DB})", where=str(folder))
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage(folder), direction=direction,
                                sampler=sampler(trials, parallel, seed), pruner=pruner(eval_every, max_steps),
                                load_if_exists=True)
    study.sampler = sampler(trials, parallel, seed + len(study.trials))  # a resumed search draws new points
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
    elif stored != identity:
        changed = sorted(k for k in identity if stored.get(k) != identity[k])
        raise UserError(f"--resume: this search was started with another {', '.join(changed)}; resume it with the "
                        "same recipe, --space, --set and --metric, or choose another --output", where=str(folder))
    return study
