"""Under bf16 on a CPU, batch and pass lengths are rounded up to ``training.SHAPE_MULTIPLE`` tokens (oneDNN keeps
memory per distinct shape): the pad is masked or ignored, so the loss and every gradient are those of the unrounded
batch. Compared in fp32 math (the bf16 plan's collator, the fp32 plan's model), where "the same" is exact."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_recipe

from adapterkit import api, loading, training
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict

MODELS = {"chat": "tiny_llama_dir", "classification": "tiny_bert_dir", "ner": "tiny_bert_dir"}


def _trainer(task, precision, request, data_files, tmp_path, **task_options):
    recipe = tiny_recipe(task, "lora", request.getfixturevalue(MODELS[task]), data_files,
                         hardware={"precision": precision})
    recipe["task"].update(task_options)
    recipe = recipe_from_dict(recipe)
    plan = make_plan(recipe)
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    data = plan.task.load_data(plan)
    model = api.prepare_model(plan, tokenizer, data)
    return plan.task.build_trainer(plan, model, tokenizer, data, tmp_path / f"{task}-{precision}")


def _loss_and_grads(trainer, batch):
    trainer.model.eval()  # no dropout: its masks would differ with the row length
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def _assert_same(a, b):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_only_low_precision_on_a_cpu_rounds():
    from adapterkit.hardware.profiles import Hardware

    rounds = {(device, precision): training.shape_multiple(Hardware("test", device=device, precision=precision))
              for device in ("cpu", "cuda") for precision in ("fp32", "bf16")}
    assert rounds == {("cpu", "fp32"): None, ("cpu", "bf16"): training.SHAPE_MULTIPLE, ("cuda", "fp32"): None,
                      ("cuda", "bf16"): None}


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_bf16_collator_rounds_padded_batches_with_the_same_loss(task, request, data_files, tmp_path):
    fp32 = _trainer(task, "fp32", request, data_files, tmp_path)
    bf16 = _trainer(task, "bf16", request, data_files, tmp_path)
    examples = [fp32.train_dataset[i] for i in range(8)]
    plain, rounded = fp32.data_collator(examples), bf16.data_collator(examples)
    assert plain["input_ids"].shape[1] % training.SHAPE_MULTIPLE  # per-batch padding in fp32
    assert rounded["input_ids"].shape[1] % training.SHAPE_MULTIPLE == 0
    assert rounded["input_ids"].shape[1] > plain["input_ids"].shape[1]
    _assert_same(_loss_and_grads(fp32, plain), _loss_and_grads(fp32, rounded))


@pytest.mark.parametrize("attention,share", [("sdpa", False), ("sdpa", True), ("eager", True)])
def test_rounded_padding_free_pass_gives_the_same_loss_and_gradients(attention, share, request, data_files, tmp_path):
    """The chat loss pads a padding-free pass (shared opening or not) to the multiple: the model sees a row of a
    multiple of SHAPE_MULTIPLE tokens, its LM head a multiple of SHAPE_MULTIPLE positions (the labelled ones and
    ignored repeats), and the loss and gradients are the unpadded row's."""
    assert _trainer("chat", "bf16", request, data_files, tmp_path).pad_multiple == training.SHAPE_MULTIPLE
    trainer = _trainer("chat", "fp32", request, data_files, tmp_path)
    assert trainer.pad_multiple is None
    trainer.model.set_attn_implementation(attention)
    trainer.share_prefix = share
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    lengths = []
    hook = trainer.model.get_input_embeddings().register_forward_hook(lambda m, args, out: lengths.append(out.shape[1]))
    scored = []
    head = trainer.model.get_output_embeddings().register_forward_hook(lambda m, args, out: scored.append(out.shape[1]))
    results = []
    for multiple in (None, training.SHAPE_MULTIPLE):
        trainer.pad_multiple = multiple
        results.append(_loss_and_grads(trainer, batch))
    hook.remove()
    head.remove()
    for counts in (lengths, scored):
        assert counts[0] % training.SHAPE_MULTIPLE and counts[1] == -(-counts[0] // training.SHAPE_MULTIPLE) \
            * training.SHAPE_MULTIPLE, counts
    _assert_same(*results)


def test_bf16_padded_chat_batches_are_rounded_by_the_collator(request, data_files, tmp_path):
    fp32 = _trainer("chat", "fp32", request, data_files, tmp_path, padding_free=False, max_length=60)
    bf16 = _trainer("chat", "bf16", request, data_files, tmp_path, padding_free=False, max_length=60)
    assert bf16.pad_multiple is None  # the collator pads, not the loss
    examples = [fp32.train_dataset[i] for i in range(8)]
    plain, rounded = fp32.data_collator(examples), bf16.data_collator(examples)
    assert plain["input_ids"].shape[1] % training.SHAPE_MULTIPLE
    assert rounded["input_ids"].shape[1] % training.SHAPE_MULTIPLE == 0
    _assert_same(_loss_and_grads(fp32, plain), _loss_and_grads(fp32, rounded))
