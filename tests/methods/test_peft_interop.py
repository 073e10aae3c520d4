"""A LoRA adapter written by adapterkit is a plain PEFT adapter: peft alone loads it, with identical logits."""

from __future__ import annotations

import torch
from conftest import tiny_recipe

from adapterkit import api
from adapterkit.recipe import recipe_from_dict


def test_lora_adapter_loads_in_plain_peft(tiny_llama_dir, data_files, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = recipe_from_dict(tiny_recipe("chat", "lora", tiny_llama_dir, data_files,
                                          train={"learning_rate": 1e-2, "max_steps": 4}))
    result = api.run(recipe, output=tmp_path / "run")
    adapter = result.run_dir / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()

    # adapterkit's own reopen path ...
    _, tokenizer, ours, _ = api.reopen(result.run_dir)
    # ... and a user who only has transformers + peft
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    plain = PeftModel.from_pretrained(base, adapter)
    batch = AutoTokenizer.from_pretrained(adapter)(["Hello there, how are you?", "Tell me a joke"],
                                                   return_tensors="pt", padding=True)
    ours.eval(), plain.eval()
    with torch.no_grad():
        expected, got = ours(**batch).logits, plain(**batch).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    with torch.no_grad(), plain.disable_adapter():
        untuned = plain(**batch).logits
    assert not torch.allclose(untuned, got, atol=1e-4), "adapter had no effect: the test could not fail"
