"""Padding-free batches with the LM head on labelled positions only give the same loss and gradients as
padded batches scored by trl's own loss: the speed-up changes no number."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_recipe

from adapterkit import api, loading
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict


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


def test_passes_over_runs_of_conversations_give_the_step_of_one_pass(tiny_llama_dir, data_files, tmp_path,
                                                                      monkeypatch):
    """task.tokens_per_pass splits a padding-free batch into runs of whole conversations, one forward and
    backward each: the step's loss and gradients equal one pass over the whole batch."""
    from adapterkit.tasks.chat import loss as chat_loss

    trainer = _trainer(tiny_llama_dir, data_files, tmp_path, padding_free=True)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    tokens = batch["input_ids"].shape[1]
    labelled = int((batch["labels"][0, 1:] != -100).sum())
    results = []
    for budget in (None, tokens // 3):
        trainer.tokens_per_pass = budget
        runs = chat_loss._conversation_runs(batch, budget)
        assert runs[0][0] == 0 and runs[-1][1] == tokens and all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
        assert (len(runs) == 1) if budget is None else len(runs) >= 3
        trainer.model.zero_grad()
        loss = trainer.training_step(trainer.model, dict(batch), num_items_in_batch=labelled)
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
        results.append((loss, grads))
    (whole, whole_grads), (split, split_grads) = results
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
    assert whole_grads.keys() == split_grads.keys() and whole_grads
    for name in whole_grads:
        torch.testing.assert_close(split_grads[name], whole_grads[name], rtol=1e-4, atol=1e-6, msg=name)

    # The Trainer's own loop hands training_step the batch's label count, so the split really happens there.
    sliced, original = [], chat_loss._slice_row
    monkeypatch.setattr(chat_loss, "_slice_row", lambda inputs, a, b: sliced.append((a, b)) or original(inputs, a, b))
    trainer.tokens_per_pass = 16
    trainer.args.max_steps = 1
    trainer.train()
    assert len(sliced) >= 2


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_shared_opening_is_computed_once_with_the_same_loss_and_gradients(tiny_llama_dir, data_files, tmp_path,
                                                                          attention):
    """task.share_prefix: the template's opening (system prompt + user header), common to every conversation
    of a padding-free row, is computed once; loss and gradients equal the row computed whole."""
    import torch.nn.functional as F

    from adapterkit.tasks.chat import prefix as chat_prefix

    trainer = _trainer(tiny_llama_dir, data_files, tmp_path, padding_free=True)
    trainer.model.set_attn_implementation(attention)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    targets = F.pad(batch["labels"][0, 1:], (0, 1), value=-100)
    bounds = chat_prefix.conversation_bounds(batch["position_ids"])
    shared = chat_prefix.shared_length(batch["input_ids"], targets, bounds)
    opening = trainer.processing_class.decode(batch["input_ids"][0, :shared])
    assert "You are a helpful AI assistant" in opening and opening.endswith("<|im_start|>user\n")
    compact, compact_targets = chat_prefix.share_prefix(dict(batch), targets, trainer.model)
    assert compact["input_ids"].shape[1] == batch["input_ids"].shape[1] - 7 * shared
    assert int((compact_targets != -100).sum()) == int((targets != -100).sum())  # no labelled token dropped

    results = []
    for share in (False, True):
        trainer.share_prefix = share
        trainer.model.train()
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters()
                                        if p.grad is not None}))
    (whole, whole_grads), (once, once_grads) = results
    torch.testing.assert_close(once, whole, rtol=1e-5, atol=1e-6)
    assert whole_grads.keys() == once_grads.keys() and whole_grads
    for name in whole_grads:
        torch.testing.assert_close(once_grads[name], whole_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_shared_opening_stops_before_labelled_tokens(tiny_llama_dir, data_files, tmp_path):
    """A label inside the opening of any conversation ends the shared part there: no labelled logit is dropped."""
    import torch.nn.functional as F

    from adapterkit.tasks.chat import prefix as chat_prefix

    trainer = _trainer(tiny_llama_dir, data_files, tmp_path, padding_free=True)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    bounds = chat_prefix.conversation_bounds(batch["position_ids"])
    targets = F.pad(batch["labels"][0, 1:], (0, 1), value=-100)
    shared = chat_prefix.shared_length(batch["input_ids"], targets, bounds)
    targets[bounds[2][0] + 3] = 7  # a label on the 5th token of the third conversation
    assert 0 < chat_prefix.shared_length(batch["input_ids"], targets, bounds) == min(shared, 3)
    assert chat_prefix.shared_length(batch["input_ids"], targets, bounds[2:3]) == 0  # one conversation: nothing
