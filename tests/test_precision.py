"""The bf16 path: a frozen base is stored in bf16 (no per-pass autocast cast), what trains stays fp32, and
one training step gives the fp32 step's loss and gradients within bf16's rounding, through the real loader,
wrapper and trainer on tiny models."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_recipe

from adapterkit import api, loading
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict

# task -> fixture of the model it runs on
MODELS = {"chat": "tiny_llama_dir", "classification": "tiny_bert_dir"}


def _trainer(task, method, precision, request, data_files, tmp_path):
    recipe = tiny_recipe(task, method, request.getfixturevalue(MODELS[task]), data_files,
                         hardware={"precision": precision})
    recipe = recipe_from_dict(recipe)
    plan = make_plan(recipe)
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    data = plan.task.load_data(plan)
    model = api.prepare_model(plan, tokenizer, data)
    return plan, plan.task.build_trainer(plan, model, tokenizer, data, tmp_path / precision)


def _step(trainer, collator=None):
    """Loss and gradients of one training step (the Trainer's own: autocast, loss scaling, backward), on a batch
    made by ``collator`` (default: the trainer's own)."""
    examples = [trainer.train_dataset[i] for i in range(8)]
    batch = trainer._prepare_inputs((collator or trainer.data_collator)(examples))
    trainer.model.train()
    trainer.model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks in both precisions
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this step skips
    with trainer.accelerator.autocast():  # as accelerate wraps the prepared model's forward in the training loop
        loss = trainer.training_step(trainer.model, batch)
    grads = {n: p.grad.float().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return float(loss), grads


@pytest.mark.parametrize("task,method", [("chat", "lora"), ("chat", "ia3"), ("chat", "bottleneck"),
                                         ("classification", "lora")])
def test_bf16_step_matches_fp32(task, method, request, data_files, tmp_path):
    _, fp32 = _trainer(task, method, "fp32", request, data_files, tmp_path)
    plan, bf16 = _trainer(task, method, "bf16", request, data_files, tmp_path)
    assert loading.weights_dtype(plan.method, plan.hardware) == "bf16"

    # The rule: a method that trains no base weight gets its frozen base in bf16; what trains stays fp32.
    frozen = {p.dtype for p in bf16.model.parameters() if not p.requires_grad}
    trained = {p.dtype for p in bf16.model.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16}, frozen
    assert trained == {torch.float32}, trained
    assert {p.dtype for p in fp32.model.parameters()} == {torch.float32}

    # Both on the bf16 trainer's batch (its lengths rounded up, training.shape_multiple): the same shape gives the same
    # dropout masks; the rounding itself changes no loss (tests/tasks/test_shape_rounding.py).
    loss32, grads32 = _step(fp32, bf16.data_collator)
    loss16, grads16 = _step(bf16)
    assert loss16 == pytest.approx(loss32, rel=2e-2)
    assert grads32.keys() == grads16.keys() and grads32
    moving = [n for n, g in grads32.items() if g.norm() > 0]
    assert moving
    for name in moving:  # bf16 keeps 8 bits of mantissa: a whole gradient is off by ~1% (measured)
        error = (grads16[name] - grads32[name]).norm() / grads32[name].norm()
        assert error < 0.03, f"{name}: relative gradient error {error:.3f}"
    # The optimizer updates fp32 master weights and holds fp32 state.
    bf16.create_optimizer_and_scheduler(num_training_steps=1)
    bf16.optimizer.step()
    assert {s.dtype for state in bf16.optimizer.state.values() for s in state.values()
            if torch.is_tensor(s) and s.dim()} == {torch.float32}


@pytest.mark.parametrize("method", ["full", "freeze"])
def test_methods_that_train_base_weights_keep_them_fp32(method, request, data_files, tmp_path):
    plan, trainer = _trainer("chat", method, "bf16", request, data_files, tmp_path)
    assert loading.weights_dtype(plan.method, plan.hardware) == "fp32"
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}  # master weights, frozen ones too
    loss, grads = _step(trainer)
    assert loss == pytest.approx(loss) and grads  # finite; gradients reach the fp32 master weights
    assert {g.dtype for g in grads.values()} == {torch.float32}


def test_auto_precision_follows_the_measured_rule_per_device_kind(monkeypatch):
    """``hardware.profile = "auto"`` takes its precision from the kind of device and the task
    (hardware/precision.py), not from a CPU flag alone: on AVX512-BF16 without AMX encoder tasks train in bf16
    and chat in fp32 (as measured), AMX is unmeasured since the bf16 fix and stays fp32, CUDA uses bf16."""
    import importlib

    from adapterkit.hardware import precision

    detect = importlib.import_module("adapterkit.hardware.detect")  # the module (the package exports the function)

    assert precision.cpu_kind({"avx2", "avx512_bf16", "amx_bf16", "amx_tile"}) == "cpu-amx"
    assert precision.cpu_kind({"avx2", "avx512f", "avx512_bf16"}) == "cpu-avx512-bf16"
    assert precision.cpu_kind({"avx2"}) == "cpu"
    assert {k: precision.auto_precision(k) for k in precision.RULES} == {
        "cpu-amx": "fp32", "cpu-avx512-bf16": "fp32", "cpu": "fp32", "cuda-bf16": "bf16", "cuda": "fp16"}
    cases = [({"avx512_bf16"}, "chat", "fp32"), ({"avx512_bf16"}, "classification", "bf16"),
             ({"avx512_bf16"}, "ner", "bf16"), ({"avx2"}, "classification", "fp32"),
             ({"amx_bf16", "avx512_bf16"}, "classification", "bf16"),
             ({"amx_bf16", "avx512_bf16"}, "chat", "fp32")]
    for flags, task, expected in cases:
        monkeypatch.setattr(detect, "cpu_flags", lambda flags=flags: flags)
        hw = detect.detect(task)
        assert hw.device == "cpu" and hw.precision == expected and precision.cpu_kind(flags) in hw.name
