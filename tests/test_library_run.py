"""The library's ``adapterkit.run`` with a ``Recipe`` object: its ``overrides`` reach the run (they were dropped)."""

from __future__ import annotations

import json

import adapterkit


def test_run_applies_overrides_to_a_recipe_object(one_step_recipe, tmp_path):
    recipe = adapterkit.load_recipe(one_step_recipe)
    assert recipe.train.max_steps == 1
    from transformers import TrainerCallback

    steps = []

    class Count(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(state.global_step)

    result = adapterkit.run(recipe, overrides={"train.max_steps": 2}, output=tmp_path / "run", callbacks=[Count()])
    assert json.loads((result.run_dir / "run.json").read_text())["steps"] == 2
    assert steps == [1, 2]  # the top-level run takes callbacks, as api.run does
