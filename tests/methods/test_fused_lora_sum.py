"""LoRA's update added in one addmm (methods/fused_lora_sum.py): the same outputs and gradients as peft's own
``result + lora_B(lora_A(x)) * scaling``, with no separate scaling multiply or sum per layer; peft's path wherever
the fused one does not apply (autocast, disabled or merged adapters, DoRA); the saved adapter is peft's."""

from __future__ import annotations

import copy

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from adapterkit.methods.fused_lora_sum import FusedLoraLinear, fuse_lora_sums


class Count(TorchDispatchMode):
    """How often each aten op ran."""

    def __init__(self):
        super().__init__()
        self.ops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] = self.ops.get(str(func.overloadpacket), 0) + 1
        return func(*args, **(kwargs or {}))


def _pair(tiny_llama_dir, **lora):
    """(peft's model, the same model fused): the tiny Llama with LoRA on every linear, B made non-zero."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, torch_dtype=torch.float32)
    config = LoraConfig(r=6, lora_alpha=16, lora_dropout=0.1, target_modules="all-linear", **lora)
    plain = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in plain.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    fused = copy.deepcopy(plain)
    assert fuse_lora_sums(fused) == sum(type(m) is FusedLoraLinear for m in fused.modules()) > 0
    return plain, fused


def _step(model, ids, mode=None):
    torch.manual_seed(1)  # the same dropout masks for both models
    model.train()
    with mode or Count() as seen:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return loss.detach(), grads, seen.ops


def test_the_fused_sum_gives_peft_s_loss_and_gradients_without_its_multiply_and_add(tiny_llama_dir):
    plain, fused = _pair(tiny_llama_dir)
    ids = torch.randint(0, plain.config.vocab_size, (2, 24))
    loss_p, grads_p, ops_p = _step(plain, ids)
    loss_f, grads_f, ops_f = _step(fused, ids)
    assert torch.allclose(loss_p, loss_f, rtol=1e-6, atol=1e-6)
    assert grads_p.keys() == grads_f.keys() and any("lora_A" in n for n in grads_f)
    for name in grads_p:
        assert torch.allclose(grads_p[name], grads_f[name], rtol=1e-4, atol=1e-7), name
    layers = sum(type(m) is FusedLoraLinear for m in fused.modules())
    assert ops_p.get("aten.add", 0) - ops_f.get("aten.add", 0) >= layers  # peft's `result + ...`, once per layer
    forward = {}
    for name, model in (("plain", plain), ("fused", fused)):
        with torch.no_grad(), Count() as seen:
            model(input_ids=ids)
        forward[name] = seen.ops
    assert forward["fused"].get("aten.addmm", 0) - forward["plain"].get("aten.addmm", 0) == layers
    assert forward["plain"].get("aten.mul", 0) - forward["fused"].get("aten.mul", 0) == layers  # peft's `* scaling`


def test_peft_s_own_path_where_the_fused_one_does_not_apply(tiny_llama_dir):
    plain, fused = _pair(tiny_llama_dir)
    ids = torch.randint(0, plain.config.vocab_size, (2, 16))
    plain.eval(), fused.eval()
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16), Count() as auto:
            assert torch.equal(plain(input_ids=ids).logits, fused(input_ids=ids).logits)
        assert auto.ops.get("aten.mul", 0) > 0  # peft's multiply: under autocast the fused sum is not taken
        with plain.disable_adapter(), fused.disable_adapter():
            assert torch.equal(plain(input_ids=ids).logits, fused(input_ids=ids).logits)
        before = fused(input_ids=ids).logits
        fused.merge_adapter()
        assert torch.allclose(fused(input_ids=ids).logits, before, atol=1e-4)
        fused.unmerge_adapter()
        assert torch.allclose(fused(input_ids=ids).logits, before, atol=1e-6)


def test_dora_keeps_its_variant_and_the_saved_adapter_is_peft_s(tiny_llama_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    plain, fused = _pair(tiny_llama_dir, use_dora=True)
    ids = torch.randint(0, plain.config.vocab_size, (2, 16))
    plain.eval(), fused.eval()
    with torch.no_grad():
        assert torch.equal(plain(input_ids=ids).logits, fused(input_ids=ids).logits)
    fused.save_pretrained(tmp_path / "adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, torch_dtype=torch.float32)
    reopened = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    assert not any(isinstance(m, FusedLoraLinear) for m in reopened.modules())
    with torch.no_grad():
        assert torch.allclose(reopened(input_ids=ids).logits, fused(input_ids=ids).logits, atol=1e-6)


def test_adapterkit_wrap_fuses_its_plain_lora_layers(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    import adapterkit

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, torch_dtype=torch.float32)
    wrapped = adapterkit.wrap(model, "lora", r=4)
    assert sum(isinstance(m, FusedLoraLinear) for m in wrapped.modules()) > 0
