"""The library's ``adapterkit.run`` with a ``Recipe`` object: its ``overrides`` reach the run (they were dropped)."""

from __future__ import annotations

import json

import adapterkit


def test_run_applies_overrides_to_a_recipe_object(one_step_recipe, tmp_path):
    recipe = adapterkit.load_recipe(one_step_recipe)
    assert recipe.train.max_steps == 1
    result = adapterkit.run(recipe, overrides={"train.max_steps": 2}, output=tmp_path / "run")
    assert json.loads((result.run_dir / "run.json").read_text())["steps"] == 2
