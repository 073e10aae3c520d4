"""``model.adapter``: training continues from a saved adapter (its weights, trainable), and the recipe's method and
base model must be the adapter's, refused in one line before anything loads."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import tiny_recipe

from adapterkit import api
from adapterkit.errors import UserError
from adapterkit.preflight import preflight
from adapterkit.recipe import recipe_from_dict


@pytest.fixture(scope="module")
def sft_run(tiny_llama_dir, data_files, tmp_path_factory):
    """A finished chat LoRA run (one step) on the tiny Llama."""
    data = tiny_recipe("chat", "lora", tiny_llama_dir, data_files, train={"max_steps": 1})
    return api.run(recipe_from_dict(data, name="sft"), output=tmp_path_factory.mktemp("runs") / "sft").run_dir


def _recipe(model_dir, files, method="lora", **model):
    data = tiny_recipe("chat", method, model_dir, files, train={"max_steps": 1})
    data["model"].update(model)
    return recipe_from_dict(data, name="continued")


def test_training_starts_from_the_saved_weights(sft_run, tiny_llama_dir, data_files):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    plan = preflight(_recipe(tiny_llama_dir, data_files, adapter=str(sft_run / "adapter")), memory="skip").plan
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = api.prepare_model(plan, tokenizer, plan.task.load_data(plan))
    saved = load_file(sft_run / "adapter" / "adapter_model.safetensors")
    params = dict(model.named_parameters())
    assert saved and any(t.abs().sum() > 0 for k, t in saved.items() if "lora_B" in k)  # trained, not fresh
    for key, tensor in saved.items():
        name = key.replace(".weight", ".default.weight")
        torch.testing.assert_close(params[name].detach(), tensor)
        assert params[name].requires_grad, name


def test_a_glob_names_the_newest_run(sft_run, tiny_llama_dir, data_files):
    pattern = str(sft_run.parent / "s*" / "adapter")
    plan = preflight(_recipe(tiny_llama_dir, data_files, adapter=pattern), memory="skip").plan
    assert plan.recipe.model.adapter == str((sft_run / "adapter").resolve())


def test_mismatches_are_refused_in_one_line(sft_run, tiny_llama_dir, data_files, tmp_path):
    adapter = str(sft_run / "adapter")
    cases = [
        (_recipe(tiny_llama_dir, data_files, "ia3", adapter=adapter), "trained with method 'lora'"),
        (_recipe(tiny_llama_dir, data_files, "full", adapter=adapter), "method 'full' cannot continue"),
        (_recipe(tiny_llama_dir, data_files, adapter=str(tmp_path / "nowhere")), "not found"),
    ]
    other = tmp_path / "other-llama"
    shutil.copytree(tiny_llama_dir, other)
    cases.append((_recipe(str(other), data_files, adapter=adapter), "trained on model"))
    for recipe, message in cases:
        with pytest.raises(UserError) as err:
            preflight(recipe, memory="skip")
        assert message in str(err.value) and "model.adapter" in str(err.value)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("damage, message", [
    (lambda adapter: (adapter / "adapter_model.safetensors").unlink(), "missing (the run's trained weights)"),
    (lambda adapter: os.truncate(adapter / "adapter_model.safetensors", 100), "truncated or corrupt"),
], ids=["missing-weights", "truncated-weights"])
def test_a_damaged_saved_adapter_is_refused_before_anything_loads(sft_run, tiny_llama_dir, data_files, tmp_path,
                                                                  damage, message):
    """The earlier run's artifact is checked against its method's saved_files, as eval and serve check it."""
    run = tmp_path / "sft-copy"
    shutil.copytree(sft_run, run)
    damage(run / "adapter")
    with pytest.raises(UserError) as err:
        preflight(_recipe(tiny_llama_dir, data_files, adapter=str(run / "adapter")), memory="skip")
    assert f"adapter_model.safetensors: {message}" in str(err.value) and "\n" not in str(err.value)


def test_the_plan_counts_the_saved_adapters_own_rank_and_targets(tiny_llama_dir, data_files, tmp_path):
    """The adapter's own options apply, not the recipe's [method] ones, so the planner sizes what will train: an
    r=2 adapter on q_proj only, continued by a recipe that says r=16 on every linear, plans r=2 on q_proj."""
    from adapterkit.memory.verdict import assess, shape_of

    data = tiny_recipe("chat", "lora", tiny_llama_dir, data_files, train={"max_steps": 1},
                       method={"r": 2, "target_modules": ["q_proj"]})
    small = api.run(recipe_from_dict(data, name="small"), output=tmp_path / "small").run_dir
    checked = preflight(_recipe(tiny_llama_dir, data_files, adapter=str(small / "adapter")), memory="assess")
    fresh = preflight(_recipe(tiny_llama_dir, data_files), memory="assess")
    shape = shape_of(fresh.plan, fresh.model_config)
    q = [(i, o) for n, i, o in shape.linears if n.endswith("q_proj")]
    assert checked.fit.estimate.trainable_params == sum(2 * (i + o) for i, o in q)
    assert fresh.fit.estimate.trainable_params > checked.fit.estimate.trainable_params
    assert assess(checked.plan, shape).estimate.trainable_params == checked.fit.estimate.trainable_params


def test_an_adapter_config_naming_another_tuner_is_refused_in_one_line(sft_run, tiny_llama_dir, data_files, tmp_path):
    """peft builds whatever tuner adapter_config.json names: a LoRA recipe continuing a folder whose file says IA3 (or a
    type peft does not know) would train another adapter, or end in peft's KeyError."""
    import json

    for kind, folder in (("IA3", tmp_path / "bare"), ("NOPE", tmp_path / "run" / "adapter")):
        shutil.copytree(sft_run / "adapter", folder)
        if folder.parent != tmp_path:  # a run's adapter: its run.json beside it
            shutil.copy(sft_run / "run.json", folder.parent / "run.json")
        config = folder / "adapter_config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "peft_type": kind}))
        with pytest.raises(UserError) as err:
            preflight(_recipe(tiny_llama_dir, data_files, adapter=str(folder)), memory="skip")
        expected = "is not a tuner peft" if kind == "NOPE" else "but method 'lora' saves 'LORA' adapters: the file was edited"
        assert str(err.value).startswith(f"{config}: peft_type {kind!r}") and expected in str(err.value), str(err.value)


def test_a_classification_adapter_continues_with_its_own_class_numbers(tiny_bert_dir, tmp_path):
    """The continued adapter's task head numbers its classes as it was trained (labels.json): an adapter whose
    classes were numbered "1", "10", "2" (text order, as before numeric labels were ordered as numbers) keeps
    them so on data that now numbers them 1, 2, 10; an adapter trained on other classes is refused in one line."""
    import json

    from adapterkit.rundir import trained_labels

    def files(labels):
        folder = tmp_path / "-".join(labels)
        folder.mkdir()
        rows = [{"text": f"{label} text {i}", "label": label} for i in range(4) for label in labels]
        for split in ("train", "eval"):
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {"classification_train": folder / "train.jsonl", "classification_eval": folder / "eval.jsonl"}

    first = tiny_recipe("classification", "lora", tiny_bert_dir, files(["1", "10", "2"]), train={"max_steps": 1})
    first["task"]["labels"] = ["1", "10", "2"]
    old = api.run(recipe_from_dict(first, name="old"), output=tmp_path / "old").run_dir / "adapter"
    again = tiny_recipe("classification", "lora", tiny_bert_dir, files(["2", "1", "10"]), train={"max_steps": 1})
    again["model"]["adapter"] = str(old)
    result = api.run(recipe_from_dict(again, name="again"), output=tmp_path / "again")
    assert trained_labels(result.run_dir / "adapter") == ["1", "10", "2"]  # not renumbered 1, 2, 10 under the head
    other = tiny_recipe("classification", "lora", tiny_bert_dir, files(["a", "b", "c"]), train={"max_steps": 1})
    other["model"]["adapter"] = str(old)
    with pytest.raises(UserError, match=r"the adapter \(model.adapter\) was trained with the labels 1, 10, 2, but its "
                                        r"data.train now gives a, b, c"):
        api.run(recipe_from_dict(other, name="other"), output=tmp_path / "other")
    assert not (tmp_path / "other").exists()  # refused before the run directory is written
