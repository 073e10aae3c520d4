"""QLoRA's LoRA gradients equal those of the same model with dequantized fp32 base weights, also after
a no-grad evaluation pass (bitsandbytes' packed AVX512-BF16 CPU kernel has no backward: see qlora.py)."""

from __future__ import annotations

import pytest
import torch

bnb = pytest.importorskip("bitsandbytes")

from conftest import tiny_recipe  # noqa: E402

from adapterkit import api, loading  # noqa: E402
from adapterkit.plan import make_plan  # noqa: E402
from adapterkit.recipe import recipe_from_dict  # noqa: E402


def lora_grads(model, batch) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model.train()
    model(**batch).loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None}


def test_qlora_gradients_match_dequantized_reference(tiny_llama_dir, data_files):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from adapterkit.methods.base import WrapContext
    from adapterkit.methods.lora import lora_config

    recipe = recipe_from_dict(tiny_recipe("chat", "qlora", tiny_llama_dir, data_files, method={"r": 4}))
    plan = make_plan(recipe)
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    data = plan.task.load_data(plan)
    quantized = api.prepare_model(plan, tokenizer, data)
    four_bit = [m for m in quantized.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and all(m.support_avx512bf16_for_cpu is False for m in four_bit)
    torch.manual_seed(1)
    for name, p in quantized.named_parameters():  # non-zero B so every LoRA factor gets a gradient
        if "lora_B" in name:
            p.data.normal_(0, 0.5)

    # fp32 reference: same architecture, base weights = the dequantized 4-bit weights, same LoRA weights.
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    ref_state = reference.state_dict()
    for name, module in quantized.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            key = name.replace("base_model.model.", "", 1).replace(".base_layer", "") + ".weight"
            ref_state[key] = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state).float()
    reference.load_state_dict(ref_state)
    reference = get_peft_model(reference, lora_config(plan.method_options, WrapContext("CAUSAL_LM", tiny_llama_dir)))
    reference.load_state_dict({n: p for n, p in quantized.state_dict().items() if "lora_" in n}, strict=False)
    device = next(quantized.parameters()).device  # the GPU where the hardware profile has one
    reference.to(device)

    text = tokenizer.apply_chat_template(data.train[0]["messages"], tokenize=False)
    enc = tokenizer([text], return_tensors="pt").to(device)
    batch = {**enc, "labels": enc["input_ids"].clone()}
    quantized.eval()
    with torch.no_grad():  # the evaluation pass that used to switch bitsandbytes to its packed kernel
        quantized(**enc)
    got, expected = lora_grads(quantized, batch), lora_grads(reference, batch)
    assert set(got) == set(expected) and len(got) == 2 * 7 * 2  # 2 layers x 7 linears x (A, B)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=2e-3, atol=1e-5, msg=name)
