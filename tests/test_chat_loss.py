"""Padding-free batches with the LM head on labelled positions only give the same loss and gradients as
padded batches scored by trl's own loss: the speed-up changes no number."""

from __future__ import annotations

import pytest
import torch

from adapterkit import api, loading
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict
from conftest import tiny_recipe


def _trainer(tiny_llama_dir, data_files, tmp_path, padding_free: bool):
    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, data_files, train={"batch_size": 8, "eval_batch_size": 64})
    recipe["task"].update(padding_free=padding_free, max_length=64)
    recipe = recipe_from_dict(recipe)
    plan = make_plan(recipe)
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    data = plan.task.load_data(plan)
    model = api.prepare_model(plan, tokenizer, data)
    return plan.task.build_trainer(plan, model, tokenizer, data, tmp_path / str(padding_free))


def test_padding_free_selective_loss_matches_padded(tiny_llama_dir, data_files, tmp_path):
    packed = _trainer(tiny_llama_dir, data_files, tmp_path, padding_free=True)
    padded = _trainer(tiny_llama_dir, data_files, tmp_path, padding_free=False)
    assert padded.model.state_dict().keys() == packed.model.state_dict().keys()

    examples = [packed.train_dataset[i] for i in range(8)]
    packed_batch, padded_batch = packed.data_collator(examples), padded.data_collator(examples)
    assert packed_batch["input_ids"].shape[0] == 1 and padded_batch["input_ids"].shape[0] == 8
    assert packed_batch["input_ids"].numel() < padded_batch["input_ids"].numel()  # no pad tokens

    losses, grads = [], []
    for trainer, batch in ((packed, packed_batch), (padded, padded_batch)):
        trainer.model.train()
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-5)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)

    assert packed.evaluate()["eval_loss"] == pytest.approx(padded.evaluate()["eval_loss"], rel=1e-5)

    # Both count every real token as seen, <|im_end|> included though SmolLM2 pads with it.
    real_tokens = sum(len(e["input_ids"]) for e in examples)
    for trainer, batch in ((packed, packed_batch), (padded, padded_batch)):
        trainer.state.num_input_tokens_seen = 0
        trainer._track_num_input_tokens(dict(batch))
        assert trainer.state.num_input_tokens_seen == real_tokens
