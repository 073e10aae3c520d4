"""The step count a method schedules over (AdaLoRA's ``total_step``, ``api.total_steps``) is the one the Trainer
takes: with gradient accumulation, an epoch's last, shorter accumulation of batches is a step too."""

from __future__ import annotations

from types import SimpleNamespace

from conftest import tiny_recipe

from adapterkit.api import run, total_steps
from adapterkit.recipe import recipe_from_dict


def test_total_steps_counts_the_last_short_accumulation_as_the_trainer_does(tmp_path, tiny_bert_dir, data_files):
    # 64 rows / batch 4 = 16 batches; 3 batches an optimizer step: 5 full steps and one of a single batch
    recipe = recipe_from_dict(tiny_recipe("classification", "lora", tiny_bert_dir, data_files,
                                          train={"max_steps": -1, "epochs": 1.0, "batch_size": 4, "grad_accum": 3,
                                                 "save_minutes": 1000.0}))
    result = run(recipe, output=tmp_path / "run")
    planned = total_steps(recipe.train, SimpleNamespace(train=range(result.info["train_examples"])))
    assert result.info["steps"] == planned == 6
