"""Prompt tuning's soft-prompt initialisations: 'vocab' starts from real token embeddings (their scale),
'random' is peft's N(0, 1)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_recipe

from adapterkit import api, loading
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict


def soft_prompt_and_vocabulary(init, minilm_dir, data_files):
    recipe = recipe_from_dict(tiny_recipe("classification", "prompt", minilm_dir, data_files,
                                          method={"init": init, "num_virtual_tokens": 8}))
    plan = make_plan(recipe)
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    model = api.prepare_model(plan, tokenizer, plan.task.load_data(plan))
    prompt = model.prompt_encoder["default"].embedding.weight.detach()
    return prompt, model.get_input_embeddings().weight.detach()


def test_vocab_init_draws_token_embeddings(minilm_dir, data_files):
    prompt, vocabulary = soft_prompt_and_vocabulary("vocab", minilm_dir, data_files)
    distance = torch.cdist(prompt, vocabulary, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert prompt.shape[0] == 8 and torch.all(distance < 1e-5), distance  # each row is a vocabulary row
    assert prompt.std().item() == pytest.approx(vocabulary.std().item(), rel=0.5)


def test_random_init_is_far_larger_than_the_embeddings(minilm_dir, data_files):
    prompt, vocabulary = soft_prompt_and_vocabulary("random", minilm_dir, data_files)
    assert prompt.std().item() > 10 * vocabulary.std().item()
