"""Tiny finished runs for the export tests (module-scoped fixtures): chat LoRA on a tiny Llama, classification
and NER LoRA on a tiny BERT, each trained 2 steps at a high learning rate so the adapter moves the logits."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_recipe

from adapterkit import api
from adapterkit.recipe import recipe_from_dict


def _run(tmp_path_factory, name, task, method, model_dir, files, **sections):
    sections.setdefault("train", {}).setdefault("max_steps", 2)
    recipe = recipe_from_dict(tiny_recipe(task, method, model_dir, files, **sections))
    return api.run(recipe, output=tmp_path_factory.mktemp(name) / "run").run_dir


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory, tiny_llama_dir, data_files) -> Path:
    return _run(tmp_path_factory, "chat", "chat", "lora", tiny_llama_dir, data_files, train={"learning_rate": 1e-2})


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory, tiny_bert_dir, data_files) -> Path:
    return _run(tmp_path_factory, "cls", "classification", "lora", tiny_bert_dir, data_files,
                train={"learning_rate": 1e-2})


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory, tiny_bert_dir, data_files) -> Path:
    return _run(tmp_path_factory, "ner", "ner", "lora", tiny_bert_dir, data_files, train={"learning_rate": 1e-2})
