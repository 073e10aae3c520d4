"""Tracking: a run writes TensorBoard event files into RUN_DIR/logs (loss, learning rate, grad norm, tokens seen,
eval metrics when evaluated during training), its log history and its curve PNGs; evaluation during training
uses the task's own metrics; the best checkpoint is kept and loaded at the end; early stopping stops."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_recipe

from adapterkit import api
from adapterkit.errors import UserError
from adapterkit.recipe import recipe_from_dict


def scalars_in(logs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {}
    for events in logs.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            tags[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return tags


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_tensorboard_curves_and_eval_during_training(task, tmp_path, tiny_bert_dir, data_files):
    recipe = recipe_from_dict(tiny_recipe(task, "lora", tiny_bert_dir, data_files,
                                          train={"max_steps": 4, "eval_every": 2, "learning_rate": 1e-2}))
    result = api.run(recipe, output=tmp_path / "run")
    tags = scalars_in(result.run_dir / "logs")
    metric = "macro_f1" if task == "classification" else "f1"
    for tag in ("train/loss", "train/learning_rate", "train/grad_norm", "train/num_input_tokens_seen",
                "eval/loss", f"eval/{metric}"):
        assert tag in tags, f"{tag} not in TensorBoard logs: {sorted(tags)}"
    assert [step for step, _ in tags[f"eval/{metric}"]] == [2, 4]  # the task's own metric, every 2 steps
    assert [step for step, _ in tags["train/loss"]] == [1, 2, 3, 4]
    history = json.loads((result.run_dir / "history.json").read_text())
    assert any(f"eval_{metric}" in entry for entry in history)
    for png in ("loss", "learning_rate", f"eval_{metric}"):
        assert (result.run_dir / "curves" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (result.run_dir / ".checkpoint-tmp" / "runs").exists()


def test_keep_best_loads_the_best_checkpoint(tmp_path, tiny_bert_dir, data_files):
    """With a learning rate this large eval_loss jumps around: the best checkpoint survives the pruning of old
    checkpoints (the last 2 are kept), and the final metrics are its."""
    recipe = recipe_from_dict(tiny_recipe("classification", "lora", tiny_bert_dir, data_files, train={
        "max_steps": 8, "eval_every": 1, "keep_best": "eval_loss", "learning_rate": 1.0, "report_to": "none"}))
    result = api.run(recipe, output=tmp_path / "run")
    history = json.loads((result.run_dir / "history.json").read_text())
    evals = {e["step"]: e["eval_loss"] for e in history if "eval_loss" in e}
    best_step = min(evals, key=evals.get)
    kept = sorted(p.name for p in (result.run_dir / "checkpoints").iterdir())
    assert f"checkpoint-{best_step}" in kept
    assert result.metrics["eval_loss"] == pytest.approx(evals[best_step], rel=1e-5)
    assert not (result.run_dir / "logs").exists()  # report_to = "none"


def test_early_stopping_stops_before_max_steps(tmp_path, tiny_bert_dir, data_files):
    recipe = recipe_from_dict(tiny_recipe("classification", "lora", tiny_bert_dir, data_files, train={
        "max_steps": 30, "eval_every": 1, "early_stopping_patience": 1, "learning_rate": 0.5, "report_to": "none"}))
    result = api.run(recipe, output=tmp_path / "run")
    assert result.info["steps"] < 30


@pytest.mark.parametrize(("train", "message"), [
    ({"keep_best": "eval_macro_f1"}, "keep_best needs train.eval_every"),
    ({"early_stopping_patience": 2}, "early_stopping_patience needs train.eval_every"),
    ({"keep_best": "macro_f1", "eval_every": 2}, "train.keep_best"),
    ({"report_to": ["none", "tensorboard"]}, "cannot be combined"),
    ({"report_to": "neptune"}, "train.report_to"),
    ({"eval_every": 2, "keep_best": "eval_loss", "save_every": 3}, "multiple of eval_every"),
])
def test_bad_tracking_options_are_one_line_errors(train, message, tiny_bert_dir, data_files):
    with pytest.raises(UserError) as err:
        recipe_from_dict(tiny_recipe("classification", "lora", tiny_bert_dir, data_files, train=train))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_tracker_package_is_named(monkeypatch, tiny_bert_dir, data_files):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UserError, match=r"train.report_to.*wandb is not installed"):
        recipe_from_dict(tiny_recipe("classification", "lora", tiny_bert_dir, data_files, train={"report_to": "wandb"}))


def test_wandb_and_mlflow_defaults_yield_to_the_users_and_end_with_training(tmp_path, monkeypatch):
    """The run-directory defaults are set only where the user has set nothing at the time of the run (a value set
    between two runs in one process won too late before), and removed when training ends, so later code in a
    library user's process does not log into the run folder. (wandb and mlflow themselves are not installed here.)"""
    import os
    from types import SimpleNamespace

    from adapterkit import tracking

    added = []
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[]), add_callback=added.append)
    plan = SimpleNamespace(recipe=SimpleNamespace(train=SimpleNamespace(report_to=["wandb", "mlflow"],
                                                                        early_stopping_patience=0)))
    for name in ("WANDB_MODE", "WANDB_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")  # the user's, set after adapterkit was imported
    logs = tracking.track(trainer, plan, tmp_path / "run")
    assert os.environ["WANDB_MODE"] == "online" and os.environ["WANDB_DIR"] == str(logs)
    assert os.environ["MLFLOW_TRACKING_URI"] == (logs / "mlruns").resolve().as_uri()
    for callback in added:
        callback.on_train_end(None, None, None)
    assert os.environ["WANDB_MODE"] == "online"
    assert "WANDB_DIR" not in os.environ and "MLFLOW_TRACKING_URI" not in os.environ
