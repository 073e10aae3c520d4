"""``adapterkit.wrap``'s options act on the model it returns as a run's do, or are refused in one line: gradient
checkpointing for every method that can have it, AdaLoRA's schedule with peft's own loop, trainable weights in fp32
on a bf16 base; what only a run's Trainer applies (LoRA+'s optimizer, EVA's data) is refused. Tiny models built from
``adapterkit.support``'s configs."""

from __future__ import annotations

import pytest
import torch

from adapterkit import UserError, wrap
from adapterkit.support import tiny_config

VOCAB = 1000


def tiny(model_type: str, auto: str, dtype=torch.float32):
    import transformers

    torch.manual_seed(0)
    model = getattr(transformers, auto).from_config(tiny_config(model_type, VOCAB))  # classifiers: 2 labels
    return model.to(dtype).train()


def llama(dtype=torch.float32):
    return tiny("llama", "AutoModelForCausalLM", dtype)  # no dropout: two forwards give the same numbers


def bert_classifier(dtype=torch.float32):
    return tiny("bert", "AutoModelForSequenceClassification", dtype)


def grads(model, ids) -> dict[str, torch.Tensor]:
    model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


@pytest.mark.parametrize("method", ["lora", "full", "freeze", "bottleneck", "ia3"])
def test_gradient_checkpointing_is_on_and_changes_no_gradient(method):
    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(0))
    plain, checkpointed = wrap(llama(), method), wrap(llama(), method, gradient_checkpointing=True)
    assert not plain.is_activation_checkpointing
    assert checkpointed.is_activation_checkpointing, f"{method}: gradient_checkpointing=True was ignored"
    expected, got = grads(plain, ids), grads(checkpointed, ids)
    assert got.keys() == expected.keys() and any(g.abs().sum() > 0 for g in got.values())
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, msg=name)


@pytest.mark.parametrize("method, options, match", [
    ("prefix", {"gradient_checkpointing": True}, "prefix injects past key/values.*gradient_checkpointing=False"),
    ("lora", {"loraplus_lr_ratio": 16}, "adapterkit.run.*create_loraplus_optimizer.*loraplus_lr_ratio=16"),
    ("lora", {"init": "eva"}, "adapterkit.run.*initialize_lora_eva_weights"),
    ("adalora", {}, "pass total_steps=N"),
    ("lora", {"total_steps": 10}, "lora has no step schedule"),
    ("adalora", {"total_steps": 0}, "positive whole number"),
])
def test_options_wrap_cannot_apply_are_refused_before_the_model_is_touched(method, options, match):
    model = llama()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    with pytest.raises(UserError, match=match) as refused:
        wrap(model, method, **options)
    assert "\n" not in str(refused.value)
    assert not model.is_activation_checkpointing and not hasattr(model, "peft_config")
    assert all(torch.equal(p, before[n]) for n, p in model.state_dict().items())


def test_adalora_trains_with_peft_documented_loop():
    """peft's loop (update_and_allocate(step) after optimizer.step(), steps from 0) over total_steps steps: ranks are
    allocated and then pruned to the target budget (with a 1-step schedule it raised KeyError, then AttributeError)."""
    steps, init_r, target_r = 10, 4, 2
    model = wrap(bert_classifier(), "adalora", init_r=init_r, target_r=target_r, total_steps=steps)
    config = model.peft_config["default"]
    assert (config.total_step, config.tinit, config.tfinal) == (steps, 1, 2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for step in range(steps):
        ids = torch.randint(0, VOCAB, (4, 12), generator=generator)
        model(input_ids=ids, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
        optimizer.step()
        model.base_model.update_and_allocate(step)
        optimizer.zero_grad()
    assert config.rank_pattern, "no rank was allocated"
    values = [p for n, p in model.named_parameters() if "lora_E" in n]
    kept = sum(int((v != 0).sum()) for v in values)
    assert kept == target_r * len(values) < init_r * len(values)


@pytest.mark.parametrize("method", ["lora", "bottleneck"])
def test_bf16_classifier_trains_its_head_in_fp32_as_a_run_does(method):
    model = wrap(bert_classifier(torch.bfloat16), method)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n, p in trainable.items() if p.dtype != torch.float32} == set(), "trainable weights left in bf16"
    assert any(p.dtype == torch.bfloat16 for p in model.parameters()), "the frozen base stays as it was stored"
    ids, labels = torch.randint(0, VOCAB, (2, 8)), torch.tensor([0, 1])
    head = [p for n, p in trainable.items() if "classifier" in n][0]
    start = head.detach().clone()
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-4)
    with torch.autocast("cpu", torch.bfloat16):  # as transformers' Trainer trains a bf16 model (bf16=True)
        loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    optimizer.step()
    assert not torch.equal(head, start), "a 1e-4 step on fp32 master weights must move the head"
    assert model(input_ids=ids, labels=labels).logits.dtype == torch.float32  # a loop without autocast works too


@pytest.mark.parametrize("method", ["freeze", "full"])
def test_methods_that_train_base_weights_get_the_fp32_model_a_run_loads(method):
    """A run loads the base in fp32 for them (fp32 master weights, ``loading.weights_dtype``); top blocks alone in
    fp32 between bf16 ones would fail outside autocast."""
    model = wrap(bert_classifier(torch.bfloat16), method)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    ids, labels = torch.randint(0, VOCAB, (2, 8)), torch.tensor([0, 1])
    model(input_ids=ids, labels=labels).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
