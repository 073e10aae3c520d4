"""``adapterkit export``: each format round-trips through the library that reads it (transformers for merged
and GGUF, onnxruntime for ONNX) and checks itself against the run's own model (refusals: test_export_refusals.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from export_runs import _run, chat_run, cls_run, ner_run  # noqa: F401  (fixtures)

from adapterkit import api
from adapterkit.errors import UserError
from adapterkit.export import export


def _batch(run_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "adapter")
    return tokenizer(["Hello there, how are you?", "Tell me a joke"], return_tensors="pt", padding=True)


def _reference_logits(run_dir: Path, batch):
    _, _, model, _ = api.reopen(run_dir)
    with torch.no_grad():
        return model.eval()(**batch).logits


def test_merged_chat_loads_in_transformers_with_the_chat_eos(chat_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    record = export(chat_run, "merged", output=tmp_path / "merged")
    out = tmp_path / "merged"
    assert record["check"]["passed"] and record["check"]["max_abs_logit_diff"] <= 1e-4
    assert json.loads((out / "export.json").read_text())["check"]["passed"]
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja",
            "generation_config.json"} <= set(record["files"])
    batch = _batch(chat_run)
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out).eval()(**batch).logits
    torch.testing.assert_close(merged, _reference_logits(chat_run, batch), rtol=0, atol=1e-4)
    tokenizer = AutoTokenizer.from_pretrained(out)
    eos = GenerationConfig.from_pretrained(out).eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in (eos if isinstance(eos, list) else [eos])
    assert record["vllm_lora"]["loadable"], record["vllm_lora"]


def test_the_chat_templates_end_of_turn_joins_the_eos_ids(smollm_dir):
    """A tokenizer whose EOS is not the turn end (<|endoftext|> here): generation still stops at <|im_end|>."""
    from transformers import AutoTokenizer, GenerationConfig

    from adapterkit.export.merged import generation_config, turn_end_ids

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    tokenizer.eos_token = "<|endoftext|>"
    im_end, endoftext = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert turn_end_ids(tokenizer) == [im_end]

    class Model:
        generation_config = GenerationConfig(eos_token_id=endoftext)

    assert generation_config(Model(), tokenizer).eos_token_id == [endoftext, im_end]


def test_merged_classification_round_trip(cls_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    record = export(cls_run, "merged", output=tmp_path / "merged")
    check = record["check"]
    assert check["passed"] and check["exported"]["accuracy"] == check["reference"]["accuracy"]
    batch = _batch(cls_run)
    with torch.no_grad():
        merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()(**batch).logits
    torch.testing.assert_close(merged, _reference_logits(cls_run, batch), rtol=0, atol=1e-4)
    # the classifier head trains whole (peft modules_to_save): vLLM's LoRA loader rejects that
    assert not record["vllm_lora"]["loadable"]
    assert any("modules_to_save" in r for r in record["vllm_lora"]["reasons"])
    saved = json.loads((cls_run / "adapter" / "adapter_config.json").read_text())["modules_to_save"]
    assert "classifier" in saved and len(saved) == len(set(saved))  # peft's own defaults not added twice


@pytest.mark.parametrize("method", ["ia3", "full", "freeze"])
def test_other_methods_that_merge_export_a_matching_model(tmp_path_factory, tiny_bert_dir, data_files, tmp_path,
                                                          method):
    run_dir = _run(tmp_path_factory, method, "classification", method, tiny_bert_dir, data_files,
                   train={"max_steps": 1, "learning_rate": 1e-2})
    check = export(run_dir, "merged", output=tmp_path / "merged")["check"]
    assert check["passed"] and check["max_abs_logit_diff"] <= 1e-4, check["verdict"]


def test_qlora_merges_into_the_dequantized_base_it_was_trained_against(tmp_path_factory, tiny_llama_dir, data_files,
                                                                      tmp_path):
    from adapterkit import loading
    from adapterkit.methods import qlora

    run_dir = _run(tmp_path_factory, "qlora", "chat", "qlora", tiny_llama_dir, data_files,
                   train={"learning_rate": 1e-2})
    batch = _batch(run_dir)
    plan, tokenizer, model, data = api.reopen(run_dir)
    with torch.no_grad():
        expected = model.eval()(**batch).logits

    def base():
        return loading.load_model(plan, tokenizer, quantize=False)

    distance = {}
    for dequantized in (True, False):
        _, _, model, _ = api.reopen(run_dir)
        with torch.no_grad():
            merged = qlora.merge(model, base, dequantized=dequantized).eval()(**batch).logits
        distance[dequantized] = float((merged - expected).abs().max())
    assert distance[True] < distance[False] / 10, distance
    record = export(run_dir, "merged", output=tmp_path / "merged")
    assert record["check"]["passed"] and record["check"]["max_abs_logit_diff"] <= 1e-4


@pytest.mark.parametrize("dtype", ["f16", "q8_0"])
def test_gguf_round_trips_through_transformers(chat_run, tmp_path, dtype):
    import gguf

    record = export(chat_run, "gguf", dtype=dtype, output=tmp_path / "gguf")
    check = record["check"]
    assert check["passed"], check["verdict"]
    assert check["exported"]["eval_loss"] <= check["reference"]["eval_loss"] * 1.03
    reader = gguf.GGUFReader(tmp_path / "gguf" / f"model-{dtype}.gguf")
    names = {t.name: t.tensor_type.name for t in reader.tensors}
    assert names["blk.0.attn_q.weight"] == dtype.upper() and names["token_embd.weight"] == dtype.upper()
    assert names["blk.0.attn_norm.weight"] == "F32"
    fields = reader.fields
    assert bytes(fields["tokenizer.ggml.model"].parts[-1]).decode() == "gpt2"
    assert "<|im_start|>" in bytes(fields["tokenizer.chat_template"].parts[-1]).decode()
    modelfile = (tmp_path / "gguf" / "Modelfile").read_text()
    assert f"FROM ./model-{dtype}.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "{{ .Content }}<|im_end|>" in modelfile


def test_onnx_classification_matches_pytorch(cls_run, tmp_path, caplog):
    import logging

    import onnxruntime as ort

    with caplog.at_level(logging.INFO):  # as the CLI logs: the exporter's own INFO lines are not the user's
        record = export(cls_run, "onnx", output=tmp_path / "onnx")
    assert "Replaced initializer" not in caplog.text
    check = record["check"]
    assert check["passed"] and check["max_abs_logit_diff"] <= 1e-4
    assert check["exported"]["accuracy"] == check["reference"]["accuracy"]
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = _batch(cls_run)  # another batch and sequence length than the trace's
    got = session.run(["logits"], {i.name: batch[i.name].numpy() for i in session.get_inputs()})[0]
    torch.testing.assert_close(torch.from_numpy(got), _reference_logits(cls_run, batch), rtol=0, atol=1e-4)


def test_onnx_ner_matches_pytorch(ner_run, tmp_path):
    check = export(ner_run, "onnx", output=tmp_path / "onnx")["check"]
    assert check["passed"] and check["max_abs_logit_diff"] <= 1e-4
    assert check["exported"]["f1"] == check["reference"]["f1"]


@pytest.fixture(scope="module")
def smollm_chat_run(tmp_path_factory) -> Path:
    """The shipped chat recipe (SmolLM2-135M-Instruct, LoRA), 2 steps on a slice."""
    from conftest import REPO

    from adapterkit import load_recipe

    overrides = {"train.max_steps": 2, "train.batch_size": 4, "data.limit_train": 16, "data.limit_eval": 8,
                 "task.max_length": 96, "task.num_samples": 1, "task.max_new_tokens": 4}
    recipe = load_recipe(REPO / "recipes" / "chat_lora.toml", overrides)
    return api.run(recipe, output=tmp_path_factory.mktemp("smollm") / "run").run_dir


@pytest.mark.integration
@pytest.mark.parametrize("fmt, dtype", [("merged", "fp32"), ("gguf", "f16"), ("gguf", "q8_0")])
def test_smollm2_chat_lora_exports_pass_their_checks(smollm_chat_run, tmp_path, fmt, dtype):
    check = export(smollm_chat_run, fmt, dtype=dtype, output=tmp_path / "out")["check"]
    print(fmt, dtype, check["verdict"], f"relative {check['relative_logit_diff']:.3g}")
    assert check["passed"], check["verdict"]


@pytest.mark.integration
def test_smollm2_gguf_without_the_qk_permutation_is_refused(smollm_chat_run, tmp_path, monkeypatch):
    """llama.cpp's q/k row order is what transformers' GGUF reader undoes: skipping it must fail the check
    (on a real model; a tiny random one barely uses its attention)."""
    from adapterkit.export import gguf

    monkeypatch.setattr(gguf, "permute", lambda weights, n_head, n_head_kv: weights)
    with pytest.raises(UserError, match="refused by its self-check"):
        export(smollm_chat_run, "gguf", dtype="f16", output=tmp_path / "out")
