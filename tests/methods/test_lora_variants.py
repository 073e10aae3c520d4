"""LoRA's initialisations (method.init) and LoRA+ (method.loraplus_lr_ratio): each trains, and the saved adapter
reloaded onto a fresh base model gives the trained model's logits (PiSSA/OLoRA adapters are converted to plain
LoRA against the original base, as peft does)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_recipe

from adapterkit import api, loading, rundir
from adapterkit.errors import UserError
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict


def trained(tmp_path, model_dir, data_files, task="classification", method="lora", **options):
    recipe = recipe_from_dict(tiny_recipe(task, method, model_dir, data_files, method=options,
                                          data={"limit_train": 16, "on_error": "skip"},
                                          train={"max_steps": 2, "learning_rate": 1e-2, "report_to": "none"}))
    plan = make_plan(recipe)
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    data = plan.task.load_data(plan)
    model = api.prepare_model(plan, tokenizer, data)
    trainer = plan.task.build_trainer(plan, model, tokenizer, data, tmp_path)
    plan.method.prepare_trainer(trainer, plan.method_options)
    trainer.train()
    return plan, tokenizer, data, trainer


@pytest.mark.parametrize(("init", "task"), [("gaussian", "classification"), ("pissa", "classification"),
                                            ("olora", "classification"), ("eva", "ner")])
def test_initialisation_trains_and_reloads(init, task, tmp_path, tiny_bert_dir, data_files):
    plan, tokenizer, data, trainer = trained(tmp_path, tiny_bert_dir, data_files, task=task, init=init)
    folder = rundir.save_trained(plan, trainer.model, tokenizer, data.labels, tmp_path)
    batch = trainer.data_collator([trainer.eval_dataset[i] for i in range(4)])
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(**batch).logits
        base = loading.load_model(plan, tokenizer, plan.task.model_kwargs(data))
        got = plan.method.load(base, folder).eval()(**batch).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_eva_initialises_from_the_data(tmp_path, tiny_bert_dir, data_files):
    """EVA initialises A from the layer inputs' principal directions and records each layer's rank."""
    plan, _, _, trainer = trained(tmp_path, tiny_bert_dir, data_files, task="ner", init="eva")
    assert str(trainer.model.peft_config["default"].init_lora_weights) == "eva"
    assert trainer.model.peft_config["default"].rank_pattern, "peft's EVA records each layer's rank"


def test_loraplus_gives_b_a_larger_learning_rate(tmp_path, tiny_bert_dir, data_files):
    _, _, _, trainer = trained(tmp_path, tiny_bert_dir, data_files, loraplus_lr_ratio=16)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    rates = {}
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            rates[names[id(p)]] = group["lr"]
    a = {r for n, r in rates.items() if "lora_A" in n}
    b = {r for n, r in rates.items() if "lora_B" in n}
    assert len(a) == len(b) == 1 and b.pop() == pytest.approx(16 * a.pop())


def test_eva_is_refused_for_classification(tiny_bert_dir, data_files):
    from adapterkit import loading
    from adapterkit.plan import check_model

    recipe = recipe_from_dict(tiny_recipe("classification", "lora", tiny_bert_dir, data_files, method={"init": "eva"}))
    with pytest.raises(UserError, match="not supported for classification"):
        check_model(make_plan(recipe), loading.load_config(recipe.model, recipe.source))


@pytest.mark.parametrize(("method", "options", "message"), [
    ("lora", {"init": "loftq"}, "method.init"),
    ("lora", {"loraplus_lr_ratio": 0.5}, "method.loraplus_lr_ratio"),
    ("adalora", {"tinit_share": 0.5, "tfinal_share": 0.5}, "below 1"),
    ("adalora", {"init_r": 4, "target_r": 8}, "cannot exceed init_r"),
])
def test_bad_variant_options_are_one_line_errors(method, options, message, tiny_bert_dir, data_files):
    with pytest.raises(UserError) as err:
        make_plan(recipe_from_dict(tiny_recipe("classification", method, tiny_bert_dir, data_files, method=options)))
    assert message in str(err.value) and "\n" not in str(err.value)
