"""One trial of a search, in its own process: ``python -m adapterkit.tune.trial`` (started by the search).

It is ``adapterkit run`` (same run directory, same checks) with one more Trainer callback: each eval during
training (``train.eval_every``) is reported to the trial in the study's SQLite database, and when the pruner
says the trial is behind, training stops there (the run then evaluates and saves as usual and the search
records the trial as pruned). If the search's process dies (kill -9), the trial stops as on SIGTERM (a
checkpoint, exit 143), or is killed 10 s later.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

from .study import PRUNED_AT


class ReportToTrial(TrainerCallback):
    """Report ``metric`` of each eval during training to an Optuna trial; stop training when it is pruned."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(self.metric)
        if value is None:
            return
        self.trial.report(float(value), state.global_step)
        if self.trial.should_prune():
            logging.getLogger("adapterkit").info("trial %d pruned at step %d (%s %.4f)", self.trial.number,
                                                 state.global_step, self.metric, value)
            self.trial.set_user_attr(PRUNED_AT, state.global_step)
            control.should_training_stop = True


def open_trial(folder: Path, number: int):
    """The trial ``number`` of the study in ``folder``, opened from its database by study name."""
    import optuna

    from .study import STUDY_NAME, storage

    study = optuna.load_study(study_name=STUDY_NAME, storage=storage(folder, heartbeat=False))
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    return optuna.trial.Trial(study, frozen._trial_id)


def stop_with_parent(parent: int, grace: float = 10.0) -> None:
    """Stop this process when the search that started it (pid ``parent``, passed on the command line: it may
    be gone before this process is done importing) is no longer its parent: SIGTERM (a run in training
    checkpoints and exits), then SIGKILL after ``grace`` seconds if it is still there (no one is left to
    record its result)."""

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="adapterkit-parent-watch").start()


def main(argv: list[str] | None = None) -> int:
    from ..api import run
    from ..errors import RunInterrupted, TrainingFailed, UserError

    parser = argparse.ArgumentParser(prog="python -m adapterkit.tune.trial")
    parser.add_argument("recipe")
    parser.add_argument("--folder", required=True, help="the search folder (its study.db)")
    parser.add_argument("--trial", type=int, required=True, help="the trial's number in the study")
    parser.add_argument("--metric", required=True)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--output", required=True)
    parser.add_argument("--parent", type=int, default=os.getppid(), help="the search's pid")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="adapterkit: %(message)s")
    stop_with_parent(args.parent)
    try:
        trial = open_trial(Path(args.folder), args.trial)
        run(args.recipe, overrides=args.set, output=args.output, callbacks=(ReportToTrial(trial, args.metric),))
    except RunInterrupted as stop:
        print(f"adapterkit: {stop}", file=sys.stderr)
        return stop.exit_code
    except (UserError, TrainingFailed) as err:
        print(f"adapterkit: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
