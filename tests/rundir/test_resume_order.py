"""A run resumed from a checkpoint inside its second epoch trains on the batches the uninterrupted run trains on:
the same loss at every step, the same weights, run.json's train_loss over the whole run (not only the steps after
the resume), and one TensorBoard point per step (the crashed attempt logged a step after the checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_recipe
from transformers import TrainerCallback

from adapterkit.api import run
from adapterkit.recipe import recipe_from_dict

STEPS, SAVE_EVERY, CRASH_AT = 14, 5, 12  # 64 train rows / batch 8: epoch 2 starts after step 8; checkpoint-10 is inside it


class CrashAt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == CRASH_AT:
            raise RuntimeError(f"crash at step {CRASH_AT}")


def losses(out: Path) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in json.loads((out / "history.json").read_text()) if "loss" in e]


def adapter(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "adapter" / "adapter_model.safetensors")


def tensorboard_steps(out: Path, tag: str = "train/loss") -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "logs"))  # the folder, as tensorboard --logdir reads it
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


@pytest.mark.integration
def test_resume_inside_the_second_epoch_reads_the_same_batches(tmp_path, tiny_bert_dir, data_files):
    recipe = recipe_from_dict(tiny_recipe("classification", "lora", tiny_bert_dir, data_files,
                                          train={"max_steps": STEPS, "save_every": SAVE_EVERY, "learning_rate": 5e-3,
                                                 "save_minutes": 1000.0}))
    whole = run(recipe, output=tmp_path / "whole")
    with pytest.raises(RuntimeError, match="crash at step"):
        run(recipe, output=tmp_path / "resumed", callbacks=(CrashAt(),))
    resumed = run(recipe, output=tmp_path / "resumed")
    assert resumed.info["resumed_from"] == "checkpoint-10" and resumed.info["steps"] == whole.info["steps"] == STEPS

    assert [s for s, _ in losses(tmp_path / "resumed")] == list(range(1, STEPS + 1))  # no step twice, none missing
    for (step, a), (_, b) in zip(losses(tmp_path / "whole"), losses(tmp_path / "resumed")):
        assert a == pytest.approx(b, abs=1e-6), f"step {step}: {a} vs {b}"
    wa, wb = adapter(tmp_path / "whole"), adapter(tmp_path / "resumed")
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-6
    assert resumed.metrics["eval_loss"] == pytest.approx(whole.metrics["eval_loss"], abs=1e-6)
    assert resumed.info["train_loss"] == pytest.approx(whole.info["train_loss"], abs=1e-6)
    assert tensorboard_steps(tmp_path / "resumed") == tensorboard_steps(tmp_path / "whole") == list(range(1, STEPS + 1))
