"""Silently wrong results on other architectures, found by a user sweep (tiny models of ``adapterkit.support.TINY``):
each test failed before its fix."""

from __future__ import annotations

import pytest
import torch
from matrix_models import matrix_files, tiny_model_dir  # noqa: F401 (fixture)
from test_architecture_matrix import recipe_for

from adapterkit import api, loading
from adapterkit.recipe import NamedSection

# the top decoder block and the decoder's final norm (BART's decoder has none: its layernorm_embedding is at the bottom)
DECODER_TOP = {"t5": ("decoder.block.1.", "decoder.final_layer_norm."), "bart": ("model.decoder.layers.1.",)}


def _freeze_recipe(arch, task, tmp_path_factory, files):
    recipe = recipe_for(arch, task, "freeze", tiny_model_dir(arch, tmp_path_factory), files)
    return recipe.model_copy(update={"method": NamedSection(name="freeze", top_layers=1)})


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_freeze_trains_the_top_of_the_decoder_on_encoder_decoders(arch, tmp_path_factory, matrix_files):
    """freeze trained the top ENCODER block (and BART's bottom embedding norm): the decoder never changed."""
    from transformers import AutoModelForSeq2SeqLM

    recipe = _freeze_recipe(arch, "seq2seq", tmp_path_factory, matrix_files)
    result = api.run(recipe, output=tmp_path_factory.mktemp("freeze-seq2seq"))
    before = AutoModelForSeq2SeqLM.from_pretrained(recipe.model.name).state_dict()
    after = AutoModelForSeq2SeqLM.from_pretrained(result.artifact_dir).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    top = DECODER_TOP[arch]
    assert changed, "nothing trained"
    assert all(k.startswith(top) for k in changed), sorted(k for k in changed if not k.startswith(top))
    for prefix in top:  # every part of the top trains: the block's FFN output and the final norm
        assert any(k.startswith(prefix) for k in changed), f"{prefix} did not train"


@pytest.mark.parametrize(("arch", "task"), [("t5", "seq2seq"), ("bart", "seq2seq"), ("t5", "classification"),
                                            ("bart", "classification")])
def test_freeze_on_encoder_decoders_requires_grad_at_the_decoder_and_the_planner_counts_it(arch, task, tmp_path_factory,
                                                                                          matrix_files):
    """Classification heads of T5 and BART read the decoder's output at the end-of-sequence token: the top of the
    decoder trains there too, beside the head; the memory planner's count is what trains (T5's first block alone
    carries the relative position bias, so the count is per block)."""
    from adapterkit.memory.shape import model_shape
    from adapterkit.plan import make_plan

    recipe = _freeze_recipe(arch, task, tmp_path_factory, matrix_files)
    plan = make_plan(recipe)
    kwargs = {"num_labels": 2} if task == "classification" else {}
    model = loading.load_model(plan, loading.load_tokenizer(recipe.model, recipe.source), kwargs)
    model = plan.method.wrap(model, plan.method_options, None)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    top = tuple(("transformer." if (arch, task) == ("t5", "classification") else "") + p for p in DECODER_TOP[arch])
    head = ("classification_head.",) if task == "classification" else ()
    assert trainable and all(n.startswith(top + head) for n in trainable), sorted(trainable)
    assert all(any(n.startswith(p) for n in trainable) for p in top + head)

    config = loading.load_config(recipe.model, recipe.source)
    if task == "classification":
        config.num_labels = 2
    shape = model_shape(config, plan.task.auto_class, lm_task=task == "seq2seq")
    predicted = plan.method.footprint(plan.method_options, shape).trainable_params
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == predicted
