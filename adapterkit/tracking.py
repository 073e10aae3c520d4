"""Where a run's training curves go (``train.report_to``): transformers' own reporting integrations, pointed
at ``RUN_DIR/logs``, plus early stopping (transformers' ``EarlyStoppingCallback``).

- tensorboard: event files in ``RUN_DIR/logs`` (``tensorboard --logdir RUN_DIR/logs``): loss, learning rate,
  gradient norm, tokens seen, and the eval metrics when ``train.eval_every`` is set.
- wandb: offline (``WANDB_MODE=offline``) under ``RUN_DIR/logs``, unless the user set WANDB_MODE/WANDB_DIR.
- mlflow: a local file store, ``RUN_DIR/logs/mlruns``, unless the user set MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import os
from pathlib import Path

LOGS = "logs"


def _default_env(name: str, value: str, defaults: dict[str, str]) -> None:
    """``name`` = ``value`` unless the user has set it (now: a variable set between two runs in one process wins
    too); ``defaults`` records it, to be removed when training ends (``_RestoreEnv``)."""
    if os.environ.get(name) is None:
        os.environ[name] = defaults[name] = value


def track(trainer, plan, run_dir: Path, resumed_at: int | None = None) -> Path:
    """Point the trainer's reporters at ``RUN_DIR/logs`` and add early stopping if asked; returns the logs folder.

    ``resumed_at``: the step of the checkpoint a resumed run starts from. The interrupted attempt may have logged
    steps after it, which the resumed run logs again: TensorBoard's writer is opened with ``purge_step`` (the
    steps from ``resumed_at + 1`` on in the earlier event files are hidden), so each step is one point."""
    from transformers import EarlyStoppingCallback
    from transformers.integrations import TensorBoardCallback

    logs = Path(run_dir) / LOGS
    report_to = plan.recipe.train.report_to
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(logs)
            if resumed_at and trainer.is_world_process_zero():  # the rank that writes (TensorBoardCallback's rule)
                from torch.utils.tensorboard import SummaryWriter

                callback.tb_writer = SummaryWriter(log_dir=str(logs), purge_step=resumed_at + 1)
    defaults: dict[str, str] = {}
    if "wandb" in report_to:
        _default_env("WANDB_MODE", "offline", defaults)
        _default_env("WANDB_DIR", str(logs), defaults)
        logs.mkdir(parents=True, exist_ok=True)
    if "mlflow" in report_to:
        _default_env("MLFLOW_TRACKING_URI", (logs / "mlruns").resolve().as_uri(), defaults)
    if defaults:
        trainer.add_callback(_restore_env(defaults))
    patience = plan.recipe.train.early_stopping_patience
    if patience:
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=patience))
    return logs


def _restore_env(defaults: dict[str, str]):
    """A callback that removes the run's defaults when training ends: wandb and mlflow read them when the trainer
    sets them up (at the start of training), and later code in the user's process must not log into this run."""
    from transformers import TrainerCallback

    class _RestoreEnv(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):
            for name, value in defaults.items():
                if os.environ.get(name) == value:
                    del os.environ[name]

    return _RestoreEnv()


def untrack(trainer) -> None:
    """No reporting for an evaluate-only trainer (zero-shot, ``adapterkit eval``): it has no curves to draw, and
    TensorBoard would otherwise write into the working directory."""
    from transformers.integrations import get_reporting_integration_callbacks

    for callback in get_reporting_integration_callbacks(trainer.args.report_to):
        trainer.remove_callback(callback)
