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


def test_run_without_progress_bars(one_step_recipe, tmp_path, capfd):
    adapterkit.run(one_step_recipe, output=tmp_path / "bars")
    assert "1/1 [" in capfd.readouterr().err  # the Trainer's bar, so that the next check can fail
    adapterkit.run(one_step_recipe, output=tmp_path / "quiet", progress=False)
    err = capfd.readouterr().err
    assert "1/1 [" not in err and "%|" not in err
    from datasets.utils.logging import is_progress_bar_enabled

    assert is_progress_bar_enabled()  # datasets' bars are back on after the run


def test_library_errors_name_the_library_arguments(one_step_recipe, tmp_path):
    import pytest

    adapterkit.run(one_step_recipe, output=tmp_path / "run", progress=False)
    with pytest.raises(adapterkit.UserError) as refused:
        adapterkit.run(one_step_recipe, output=tmp_path / "run", progress=False)
    assert "pass overwrite=True to replace it or choose another output" in str(refused.value)
    assert "--" not in str(refused.value)
    with pytest.raises(adapterkit.UserError) as refused:
        adapterkit.load_recipe(one_step_recipe, ["train.max_steps.x=1"])
    assert "overrides train.max_steps" in str(refused.value) and "--set" not in str(refused.value)
