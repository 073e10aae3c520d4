"""AdaLoRA through adapterkit's run: the rank allocation runs each optimizer step (peft records the final ranks
in the saved adapter's rank_pattern), and the reloaded adapter reproduces the run's metrics."""

from __future__ import annotations

import json

from conftest import tiny_recipe

from adapterkit import api
from adapterkit.recipe import recipe_from_dict


def test_adalora_allocates_ranks_and_reloads(tmp_path, tiny_bert_dir, data_files):
    recipe = recipe_from_dict(tiny_recipe("classification", "adalora", tiny_bert_dir, data_files,
                                          method={"init_r": 4, "target_r": 2}, data={"limit_train": 16},
                                          train={"max_steps": 3, "report_to": "none"}))
    result = api.run(recipe, output=tmp_path / "run")
    config = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["total_step"] == 3
    assert config["rank_pattern"], "update_and_allocate never ran: no rank pattern was recorded"
    again = api.evaluate_run(result.run_dir)
    assert again["eval_macro_f1"] == result.metrics["eval_macro_f1"]
