"""One test per defect of issue #19 (tiny models of ``adapterkit.support.TINY``): each failed before its fix."""

from __future__ import annotations

import pytest
import torch
from matrix_models import matrix_files, tiny_model_dir  # noqa: F401 (fixture)
from test_architecture_matrix import recipe_for

from adapterkit import api, loading
from adapterkit.errors import UserError
from adapterkit.support import cell, tiny_config


def _saved_keys(folder) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as fh:
        return list(fh.keys())


@pytest.mark.parametrize(("arch", "head"), [("modernbert", "head.dense"), ("deberta-v2", "pooler.dense"),
                                            ("t5", "classification_head.dense")])
def test_d1_whole_task_head_trains_and_is_saved(arch, head, tmp_path_factory, matrix_files):
    recipe = recipe_for(arch, "classification", "lora", tiny_model_dir(arch, tmp_path_factory), matrix_files)
    result = api.run(recipe, output=tmp_path_factory.mktemp("d1"))
    keys = _saved_keys(result.artifact_dir)
    assert any(f"{head}.weight" in k for k in keys), f"{head} not saved: {keys}"
    assert api.evaluate_run(result.run_dir)["eval_loss"] == pytest.approx(result.metrics["eval_loss"], abs=1e-6)


@pytest.mark.parametrize("arch", ["deberta-v2", "modernbert"])
def test_d2_qlora_keeps_the_whole_head_out_of_4bit(arch, tmp_path_factory, matrix_files):
    import bitsandbytes as bnb

    recipe = recipe_for(arch, "classification", "qlora", tiny_model_dir(arch, tmp_path_factory), matrix_files)
    api.run(recipe, output=tmp_path_factory.mktemp("d2"))  # crashed in peft: 'compress_statistics'
    from adapterkit.plan import make_plan

    plan = make_plan(recipe)
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    model = loading.load_model(plan, tokenizer, {"num_labels": 2})
    from adapterkit.anatomy import head_module_names

    for name in head_module_names(model):
        assert not any(isinstance(m, bnb.nn.Linear4bit) for m in model.get_submodule(name).modules()), name
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()), "nothing was quantized"


@pytest.mark.parametrize(("arch", "task", "method"), [
    ("falcon", "chat", "prefix"), ("deberta-v2", "classification", "prefix"), ("modernbert", "ner", "prefix"),
    ("distilbert", "classification", "prefix"), ("t5", "classification", "prefix"),
    ("bart", "classification", "prefix"),  # D3
    ("t5", "classification", "prompt"), ("bart", "classification", "ptuning"),  # D6
    ("bart", "chat", "lora"),  # D7
    ("t5", "classification", "bottleneck"), ("bart", "classification", "bottleneck"),  # bottleneck, in preflight
])
def test_refused_from_the_config_alone(arch, task, method):
    assert cell(arch, method, task, tiny_config(arch)) is not None


@pytest.mark.parametrize(("arch", "method"), [("distilbert", "prompt"), ("distilbert", "ptuning"),
                                              ("distilbert", "ia3"), ("modernbert", "ia3"), ("phi3", "ia3"),
                                              ("falcon", "bottleneck")])
def test_d4_and_anatomy_methods_that_now_apply(arch, method, tmp_path_factory, matrix_files):
    task = "chat" if arch in ("phi3", "falcon") else "classification"
    assert cell(arch, method, task, tiny_config(arch)) is None
    recipe = recipe_for(arch, task, method, tiny_model_dir(arch, tmp_path_factory), matrix_files)
    result = api.run(recipe, output=tmp_path_factory.mktemp("d4"))
    assert result.info["trainable_params"] > 0


def test_d5_deberta_ner_qlora_under_bf16(tmp_path_factory, matrix_files):
    arch = "deberta-v2"
    recipe = recipe_for(arch, "ner", "qlora", tiny_model_dir(arch, tmp_path_factory), matrix_files)
    recipe = recipe.model_copy(update={"hardware": recipe.hardware.model_copy(update={"precision": "bf16"})})
    api.run(recipe, output=tmp_path_factory.mktemp("d5"))  # overflowed converting finfo(fp32).min to bf16


def test_d7_missing_backbone_weights_are_refused_at_load(tmp_path_factory, matrix_files):
    from adapterkit.plan import make_plan

    recipe = recipe_for("bart", "classification", "lora", tiny_model_dir("bart", tmp_path_factory), matrix_files)
    plan = make_plan(recipe)
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    with pytest.raises(UserError, match="lacks .* weights"):
        loading.load_model(plan, tokenizer, auto_class="AutoModelForCausalLM")  # BartForCausalLM
    loading.load_model(plan, tokenizer, {"num_labels": 2})  # a fresh classification head is expected


def test_d8_wrap_reads_the_head_from_transformers_mappings(tmp_path_factory):
    import transformers

    from adapterkit import wrap

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir("gpt2", tmp_path_factory))
    assert type(model).__name__ == "GPT2LMHeadModel"
    wrapped = wrap(model, "prompt", num_virtual_tokens=4)
    assert str(wrapped.peft_config["default"].task_type) == "CAUSAL_LM"
    out = wrapped(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]]))
    assert out.loss is not None


def test_d9_planner_counts_what_freeze_trains_with_an_untied_lm_head(tmp_path_factory, matrix_files):
    from adapterkit.memory.shape import model_shape
    from adapterkit.plan import make_plan

    recipe = recipe_for("mistral", "chat", "freeze", tiny_model_dir("mistral", tmp_path_factory), matrix_files)
    plan = make_plan(recipe)
    config = loading.load_config(recipe.model, recipe.source)
    shape = model_shape(config, plan.task.auto_class, lm_task=True)
    predicted = plan.method.footprint(plan.method_options, shape).trainable_params
    model = api.prepare_model(plan, loading.load_tokenizer(recipe.model, recipe.source), None)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == predicted
