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
    (hardware/precision.py), not from a CPU flag alone: on CPUs with AVX512-BF16 or AMX, classification, NER, chat,
    lm and preference train in bf16 (each measured faster and no larger there after the bf16 fixes), while the
    unmeasured seq2seq stays fp32; CUDA uses bf16."""
    import importlib

    from adapterkit.hardware import precision

    detect = importlib.import_module("adapterkit.hardware.detect")  # the module (the package exports the function)

    assert precision.cpu_kind({"avx2", "avx512_bf16", "amx_bf16", "amx_tile"}) == "cpu-amx"
    assert precision.cpu_kind({"avx2", "avx512f", "avx512_bf16"}) == "cpu-avx512-bf16"
    assert precision.cpu_kind({"avx2"}) == "cpu"
    assert {k: precision.auto_precision(k) for k in precision.RULES} == {
        "cpu-amx": "fp32", "cpu-avx512-bf16": "fp32", "cpu": "fp32", "cuda-bf16": "bf16", "cuda": "fp16"}
    cases = [({"avx512_bf16"}, "chat", "bf16"), ({"avx512_bf16"}, "lm", "bf16"), ({"avx512_bf16"}, "preference", "bf16"),
             ({"avx512_bf16"}, "seq2seq", "fp32"), ({"avx512_bf16"}, "classification", "bf16"),
             ({"avx512_bf16"}, "ner", "bf16"), ({"avx2"}, "classification", "fp32"), ({"avx2"}, "lm", "fp32"),
             ({"amx_bf16", "avx512_bf16"}, "classification", "bf16"),
             ({"amx_bf16", "avx512_bf16"}, "chat", "bf16"), ({"amx_bf16", "avx512_bf16"}, "lm", "bf16"),
             ({"amx_bf16", "avx512_bf16"}, "preference", "bf16"), ({"amx_bf16", "avx512_bf16"}, "seq2seq", "fp32")]
    for flags, task, expected in cases:
        monkeypatch.setattr(detect, "cpu_flags", lambda flags=flags: flags)
        hw = detect.detect(task)
        assert hw.device == "cpu" and hw.precision == expected and precision.cpu_kind(flags) in hw.name


def _count_input_copies(model, batch) -> int:
    """How many fp32 copies of a bf16 activation one forward makes (``aten._to_copy`` bf16 -> fp32)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        copies = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.ops.aten._to_copy.default and args[0].dtype == torch.bfloat16 \
                    and kwargs.get("dtype") == torch.float32 and args[0].dim() > 1:
                Count.copies += 1
            return func(*args, **kwargs)

    with Count():
        model(**batch)
    return Count.copies


def test_adapter_inputs_are_not_copied_to_fp32_under_autocast(request, data_files, tmp_path):
    """peft casts each adapted layer's bf16 input to the fp32 adapter's dtype, and autocast casts it back:
    under autocast that round trip is skipped (same numbers); outside autocast peft still casts, so the
    fp32 adapters of a bf16-stored base still run (a reopened model used without autocast). On an encoder: the
    chat task's fp32 adapter sums (below) make a decoder's residual stream fp32, so fewer inputs are bf16 there."""
    _, trainer = _trainer("classification", "lora", "bf16", request, data_files, tmp_path)
    model = trainer.model
    examples = [trainer.train_dataset[i] for i in range(4)]
    batch = trainer._prepare_inputs(trainer.data_collator(examples))
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        copies = _count_input_copies(model, batch)
        skipped = model(**batch).logits
    adapted = sum(1 for n, _ in model.named_modules() if n.endswith("lora_A"))
    assert adapted and copies < adapted, (copies, adapted)  # before: one copy per adapted layer at least
    from peft.helpers import disable_input_dtype_casting  # noqa: F401  (the switch the flag stands in for)
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = True
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert _count_input_copies(model, batch) >= adapted
        cast = model(**batch).logits
    assert torch.equal(skipped, cast)  # bf16 -> fp32 -> bf16 is exact
    from peft.tuners.lora import LoraLayer

    from adapterkit.methods.input_casts import skip_input_casts_under_autocast
    assert skip_input_casts_under_autocast(model) >= adapted
    layer = next(m for m in model.modules() if isinstance(m, LoraLayer))
    x = torch.randn(2, layer.in_features, dtype=torch.bfloat16)
    with torch.no_grad():  # no autocast: peft casts, the fp32 adapter meets an fp32 input, no dtype error
        assert layer(x).isfinite().all()


def _first_adapted(model):
    """The first layer a method adapts, and its trainable parameters (the adapter's own)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from adapterkit.methods.bottleneck import CHILD

    for module in model.modules():
        if isinstance(module, BaseTunerLayer) or isinstance(getattr(module, CHILD, None), torch.nn.Module):
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                return module, params
    raise AssertionError("no adapted layer")


@pytest.mark.parametrize("method", ["lora", "loha", "lokr", "vera", "ia3", "bottleneck"])
def test_bf16_adapted_layer_keeps_an_update_below_bf16_resolution(method, request, data_files, tmp_path):
    """An adapter starts as the identity (LoRA's B, LoHa's w2_b, VeRA's lambda_b, a bottleneck's up: zeros; IA3's
    scaling: ones) and moves by about the learning rate per step, so its first updates are far smaller than bf16's
    resolution of the frozen layer's output (2^-9 of it). Added to a bf16 output and cast back to bf16 (peft's LoRA
    casts to the base output's dtype, LoHa/LoKr/VeRA/IA3 to their input's, a bottleneck hook to the projection's),
    the update rounded away: the forward pass did not see the adapter and bf16 runs learned slower (chat LoRA on
    SmolLM2: +2.5% eval loss after 10 steps, docs/defaults.md). Under autocast, as the Trainer runs it, the layer's
    output must carry the update as fp32 computes it."""
    import copy

    _, trainer = _trainer("chat", method, "bf16", request, data_files, tmp_path)
    layer, params = _first_adapted(trainer.model)
    generator = torch.Generator().manual_seed(0)
    start = [p.detach().clone() for p in params]
    width = next(m for m in layer.modules() if isinstance(m, torch.nn.Linear)).in_features
    x = torch.randn(64, width, generator=generator).to(torch.bfloat16)  # a bf16 activation
    reference = copy.deepcopy(layer).float()  # the same layer in fp32, no autocast: what the update is
    with torch.no_grad(), trainer.accelerator.autocast():
        frozen = layer(x).float()  # at the identity start: the frozen layer's own output
    for param, ref in zip(params, [p for p in reference.parameters() if p.requires_grad], strict=True):
        step = 1e-6 * torch.randn(param.shape, generator=generator)  # ~ one early update
        param.data, ref.data = param.data + step, ref.data + step
    with torch.no_grad():
        with trainer.accelerator.autocast():
            output = layer(x).float()
        moved = reference(x.float())
        for ref, value in zip([p for p in reference.parameters() if p.requires_grad], start, strict=True):
            ref.data = value.float().clone()
        update = moved - reference(x.float())  # fp32's update: the moved layer less the identity start
    assert update.abs().max() < 2 ** -9 * frozen.abs().mean()  # below half a bf16 step of a typical output
    error = (output - frozen - update).norm() / update.norm()
    assert error < 0.05, f"{method}: the update reached the output with relative error {error:.3f}"


def test_bf16_chat_run_trains_evaluates_and_answers(request, data_files, tmp_path):
    """A whole chat LoRA run in bf16 through ``api.run``: training and eval under autocast, then the sample
    answers, which are generated after training without autocast (the fp32 adapter sums must not leak an fp32
    activation into the next bf16 frozen layer there: that was a dtype error, found on an AMX Xeon)."""
    recipe = recipe_from_dict(tiny_recipe("chat", "lora", request.getfixturevalue("tiny_llama_dir"), data_files,
                                          hardware={"precision": "bf16"}, train={"max_steps": 2}))
    result = api.run(recipe, output=tmp_path / "run")
    assert result.info["hardware"]["precision"] == "bf16"
    assert (tmp_path / "run" / "samples.jsonl").read_text().strip()
    assert result.metrics["eval_loss"] == pytest.approx(result.metrics["eval_loss"])  # finite
