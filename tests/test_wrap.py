"""``adapterkit.wrap`` refuses, in one line and before touching the model, what would otherwise fail later or
silently: a model that already carries an adapter, a method preflight refuses for the model, a model argument
that is no transformers model, an unknown method name, qlora on an unquantized model. Tiny models from configs."""

from __future__ import annotations

import pytest
import torch

from adapterkit import wrap
from adapterkit.errors import UserError
from adapterkit.methods import METHODS
from adapterkit.support import cell, tiny_config

IDS = torch.tensor([[1, 2, 3, 4]])
AUTO = {"chat": "AutoModelForCausalLM", "classification": "AutoModelForSequenceClassification",
        "ner": "AutoModelForTokenClassification"}


def tiny(arch: str = "llama", task: str = "chat"):
    import transformers

    torch.manual_seed(0)
    return getattr(transformers, AUTO[task]).from_config(tiny_config(arch)).eval()


def refused(match: str | None, *args, **options) -> str:
    with pytest.raises(UserError, match=match) as err:
        wrap(*args, **options)
    message = str(err.value)
    assert "\n" not in message, message
    return message


def test_wrapping_a_base_twice_is_refused_and_keeps_the_first_adapter():
    base = tiny()
    first = wrap(base, "lora", r=4)
    with torch.no_grad():
        for name, p in first.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter: its effect shows in the logits
        logits = first(input_ids=IDS).logits.clone()
    shapes = {n: p.shape for n, p in first.named_parameters() if "lora_" in n}
    message = refused("already carries an adapter", base, "lora", r=8)
    assert "'lora'" in message and "model.adapter" in message and "add_adapter" in message
    assert {n: p.shape for n, p in first.named_parameters() if "lora_" in n} == shapes
    with torch.no_grad():
        torch.testing.assert_close(first(input_ids=IDS).logits, logits, rtol=0, atol=0)
    refused("PeftModelForCausalLM with method 'lora'", first, "lora")  # the wrapped model itself
    first.unload()  # peft takes its layers out again: the base is free to wrap
    assert wrap(base, "ia3") is not None


@pytest.mark.parametrize(("first", "task", "named"), [
    ("bottleneck", "chat", "'bottleneck'"), ("prompt", "chat", "'prompt'"),  # prompt: no trace in the base itself
    ("prompt", "classification", "'prompt'"), ("ia3", "classification", "'ia3'"),
    ("full", "chat", None),  # full changes no structure: a second wrap is fine, a third is not
])
def test_a_model_carrying_any_adapter_is_refused(first, task, named):
    base = tiny("llama", task)
    kept = wrap(base, first)
    if named is None:
        kept = wrap(base, "lora")
        named = "'lora'"
    message = refused("already carries an adapter", base, "lora")
    assert named in message, message
    assert kept is not None  # the first wrapped model lives on beside its base


def test_peft_layers_added_outside_adapterkit_are_refused():
    from peft import LoraConfig, get_peft_model

    base = tiny()
    base.add_adapter(LoraConfig(r=2, target_modules=["q_proj"]))  # transformers' own peft integration
    refused("already carries an adapter: method 'lora'", base, "bottleneck")
    peft_model = get_peft_model(tiny(), LoraConfig(r=2, target_modules=["v_proj"]))
    refused("PeftModel", peft_model, "full")


@pytest.mark.parametrize(("arch", "task", "method"), [
    ("falcon", "chat", "prefix"),  # wrapped, then a tensor-size RuntimeError at the first forward
    ("distilbert", "classification", "boft"), ("modernbert", "ner", "boft"), ("phi3", "chat", "boft"),
    ("deberta-v2", "classification", "prefix"), ("distilbert", "classification", "prefix"),
    ("modernbert", "classification", "prefix"),
])
def test_wrap_applies_the_methods_preflight_rules(arch, task, method):
    from peft.tuners.tuners_utils import BaseTunerLayer

    reason = cell(arch, method, task)
    assert reason is not None
    model = tiny(arch, task)
    message = refused(None, model, method)
    assert message == reason
    assert not any(isinstance(m, BaseTunerLayer) for m in model.modules()), "refused after touching the model"


@pytest.mark.parametrize(("model", "says"), [
    ("HuggingFaceTB/SmolLM2-135M", "from_pretrained('HuggingFaceTB/SmolLM2-135M')"),
    (None, "got None"),
    (torch.nn.Sequential(torch.nn.Linear(2, 2)), "got a torch.nn.modules.container.Sequential"),
])
def test_a_model_argument_wrap_cannot_read_is_named(model, says):
    message = refused("wrap needs", model, "lora")
    assert says in message and "from_pretrained" in message


def test_a_tokenizer_in_place_of_the_model_is_named(minilm_dir):
    from transformers import AutoTokenizer

    refused(r"got a tokenizer \(BertTokenizer.*pass the model", AutoTokenizer.from_pretrained(minilm_dir), "lora")


def test_method_names_ignore_case_and_a_missing_method_is_named():
    assert wrap(tiny(), "LoRA", r=2).peft_config["default"].peft_type.value == "LORA"
    refused("method must be a method name such as 'lora', got None", tiny(), None)
    with pytest.raises(UserError, match="did you mean 'lora'"):
        METHODS.get("LoRA")  # recipes keep exact names, with the suggestion


def test_qlora_needs_a_model_loaded_in_4bit(tiny_llama_dir):
    bnb = pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    plain = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)  # nothing would be quantized, all cast to fp32
    message = refused("not: load it with from_pretrained", plain, "qlora", quant_type="fp4")
    assert "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='fp4'" in message and "'lora'" in message

    quantized = AutoModelForCausalLM.from_pretrained(
        tiny_llama_dir, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32))
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in quantized.modules())
    model = wrap(quantized, "qlora", r=2)
    assert model(input_ids=IDS, labels=IDS).loss is not None


def test_qlora_options_that_contradict_the_models_quantization_are_refused(tiny_llama_dir):
    pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    def quantized():
        return AutoModelForCausalLM.from_pretrained(tiny_llama_dir, quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32))

    message = refused("method.quant_type = 'fp4', but the model is already quantized with bnb_4bit_quant_type='nf4'",
                      quantized(), "qlora", r=2, quant_type="fp4")
    assert "drop method.quant_type" in message
    refused("method.double_quant = True, but", quantized(), "qlora", r=2, double_quant=True)  # loaded without
    refused("method.quant_storage = 'bf16', but", quantized(), "qlora", r=2, quant_storage="bf16")
    assert wrap(quantized(), "qlora", r=2, quant_type="nf4", double_quant=False) is not None  # agreeing: fine
    assert wrap(quantized(), "qlora", r=2) is not None  # defaults: the model's own quantization is used
