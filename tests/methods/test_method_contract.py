"""One contract over every registered method and every task, on tiny models through the real loader:
only the intended parameters train, the training loss falls, and save -> load gives identical logits."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import tiny_recipe

from adapterkit import api, loading, rundir
from adapterkit.methods import METHODS
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict

# Encoder tasks use the packaged MiniLM (a random tiny encoder gives prompt-style methods nothing to steer);
# chat uses a tiny Llama built from a config.
TASK_MODELS = {"classification": "minilm_dir", "ner": "minilm_dir", "chat": "tiny_llama_dir"}
# Learning rates that move a 32-wide model visibly in a handful of steps.
FAST_LR = {"full": 2e-4, "freeze": 3e-3, "lora": 3e-3, "qlora": 3e-3, "bottleneck": 3e-3, "ia3": 5e-2, "adalora": 3e-3,
           "loha": 3e-3, "lokr": 3e-3, "vera": 3e-2, "oft": 3e-3, "boft": 3e-3,
           "prompt": 1e-1, "ptuning": 1e-2, "prefix": 3e-2}


def build(task, method, request, data_files, **train):
    model_dir = request.getfixturevalue(TASK_MODELS[task])
    lr = FAST_LR.get(method, 1e-2)
    # A few examples seen many times: memorising them must lower the loss for every method.
    recipe = recipe_from_dict(tiny_recipe(task, method, model_dir, data_files, data={"limit_train": 16, "on_error": "skip"},
                                          train={"learning_rate": lr, "max_steps": 20, **train}))
    plan = make_plan(recipe)
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    data = plan.task.load_data(plan)
    model = api.prepare_model(plan, tokenizer, data)
    return plan, tokenizer, data, model


def logits_of(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("task", sorted(TASK_MODELS))
@pytest.mark.parametrize("method", METHODS.names())
def test_method_contract(method, task, request, data_files, tmp_path):
    record = METHODS.get(method)
    if record.needs.tasks is not None and task not in record.needs.tasks:
        pytest.skip(f"{method} does not suit {task}")
    plan, tokenizer, data, model = build(task, method, request, data_files)

    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    total = sum(p.numel() for p in model.parameters())
    share = sum(p.numel() for p in model.parameters() if p.requires_grad) / total
    assert trainable, "nothing trains"
    if record.artifact == "model" and method == "full":
        assert share == 1.0
    else:
        assert share < 0.5, f"{method} trains {share:.0%} of the model"

    trainer = plan.task.build_trainer(plan, model, tokenizer, data, tmp_path)
    if record.prepare_trainer is not None:  # as api.run does (AdaLoRA's rank allocation, LoRA+'s optimizer)
        record.prepare_trainer(trainer, plan.method_options)
    before = trainer.evaluate(trainer.train_dataset)["eval_loss"]
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainer.train()
    after = trainer.evaluate(trainer.train_dataset)["eval_loss"]
    assert after < before, f"{method}/{task}: training loss did not fall ({before:.4f} -> {after:.4f})"
    for n, p in model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p.detach(), frozen_before[n]), f"frozen parameter {n} changed"

    folder = rundir.save_trained(plan, trainer.model, tokenizer, data.labels, tmp_path)
    saved = record.saved_files  # what the record says its save writes: there, and whole (as eval/serve check it)
    assert saved is not None and (folder / saved.config).is_file(), (method, saved, sorted(os.listdir(folder)))
    rundir.check_artifact(tmp_path, record.artifact, saved)
    batch = trainer.data_collator([trainer.eval_dataset[i] for i in range(min(4, len(trainer.eval_dataset)))])
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    expected = logits_of(trainer.model, batch)
    base = loading.load_model(plan, tokenizer, plan.task.model_kwargs(data))
    reloaded = record.load(base, folder)
    torch.testing.assert_close(logits_of(reloaded, batch), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", METHODS.names())
def test_a_method_declares_the_peft_tuner_it_saves(method, request, data_files, tmp_path):
    """``Method.peft_type`` is what its ``save`` writes as adapter_config.json's peft_type (a reopened run's adapter is
    checked against it, ``peft_tuner.check_tuner``), and None for a method that saves no peft adapter."""
    import json

    record = METHODS.get(method)
    task = "classification" if record.needs.tasks is None or "classification" in record.needs.tasks else \
        record.needs.tasks[0]
    _, _, _, model = build(task, method, request, data_files)
    record.save(model, tmp_path / record.artifact)
    config = tmp_path / record.artifact / "adapter_config.json"
    saved = json.loads(config.read_text())["peft_type"] if config.is_file() else None
    assert record.peft_type == saved
