"""Every shipped recipe validates, plans and runs a few steps end to end on the packaged model and data
(HF_HUB_OFFLINE=1), writing a complete run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO

from adapterkit import api, load_recipe

RECIPES = sorted((REPO / "recipes").glob("*.toml"))
# A few steps on a slice of the data: enough to exercise load -> wrap -> train -> eval -> save.
QUICK = {"train.max_steps": 2, "train.batch_size": 4, "data.limit_train": 16, "data.limit_eval": 8}
QUICK_CHAT = {**QUICK, "task.max_length": 96, "task.num_samples": 1, "task.max_new_tokens": 4}


def test_recipes_are_shipped():
    names = {p.stem for p in RECIPES}
    assert {"chat_lora", "chat_qlora", "sentiment_lora", "sentiment_full", "ner_lora", "ner_bottleneck",
            "sentiment_prompt", "lm_lora", "chat_dpo"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates_without_heavy_imports(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    assert recipe.method.name and recipe.task.name and recipe.data.train


@pytest.mark.integration
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_a_few_steps(path, tmp_path):
    recipe = load_recipe(path)
    overrides = QUICK_CHAT if recipe.task.name in ("chat", "preference") else QUICK
    if recipe.model.adapter:  # continues the adapter of the recipe it names (chat_dpo: chat_lora's), run first
        first = REPO / "recipes" / f"{recipe.model.adapter.split('/')[-2].split('-')[0]}.toml"
        earlier = api.run(first, overrides=QUICK_CHAT, output=tmp_path / "first")
        overrides = {**overrides, "model.adapter": str(earlier.run_dir / "adapter")}
    result = api.run(path, overrides=overrides, output=tmp_path / "run")
    run_dir = result.run_dir
    info = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert info["steps"] == 2 and info["method"] == recipe.method.name
    assert (run_dir / "recipe.toml").is_file()
    artifact = Path(run_dir / info["artifact"])
    assert any(artifact.glob("*.safetensors")), f"no weights in {artifact}"
    assert not list(artifact.rglob("*.bin")), "pickle weights written"
    primary = {"chat": "eval_loss", "classification": "eval_macro_f1", "ner": "eval_f1", "lm": "eval_loss",
               "preference": "eval_loss"}[recipe.task.name]
    assert primary in metrics and metrics[primary] == metrics[primary]  # present and not NaN
    assert info["peak_rss_mib"] > 0 and info["train_tokens"] > 0
