"""The zero-shot row of classification with a causal LM: a prompt, each label scored by its likelihood.

Batched scoring (padding, sorting by length) must give exactly the log-probabilities of scoring each
prompt + label alone; ``adapterkit zero-shot`` must take this path for a causal LM (not a random head)
and the encoder path for BERT."""

from __future__ import annotations

import json

import pytest
import tomli_w
import torch
from conftest import tiny_recipe

from adapterkit.cli import main
from adapterkit.errors import UserError
from adapterkit.plan import load_recipe
from adapterkit.tasks import classification_prompt


def test_causal_lms_are_told_from_encoders(tiny_llama_dir, tiny_bert_dir):
    from transformers import AutoConfig

    assert classification_prompt.is_causal_lm(AutoConfig.from_pretrained(tiny_llama_dir))
    assert not classification_prompt.is_causal_lm(AutoConfig.from_pretrained(tiny_bert_dir))


def test_batched_label_scores_equal_one_sequence_at_a_time(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    texts = ["a gripping, funny film", "dull", "the plot goes nowhere and the actors look bored throughout"]
    labels = ["fresh", "rotten", "mixed feelings"]  # a multi-token label too
    prompts, label_ids = classification_prompt.encode_prompts(
        tokenizer, texts, labels, classification_prompt.DEFAULT_PROMPT, max_length=32)
    assert len({len(p) for p in prompts}) == 3 and max(map(len, label_ids)) > 1
    batched = classification_prompt.label_log_probs(model, prompts, label_ids, tokenizer.pad_token_id, batch_size=4)
    for i, prompt in enumerate(prompts):
        for k, label in enumerate(label_ids):
            with torch.inference_mode():
                log_probs = model(torch.tensor([prompt + label])).logits[0].log_softmax(-1)
            alone = sum(float(log_probs[len(prompt) - 1 + j, t]) for j, t in enumerate(label))
            assert batched[i, k].item() == pytest.approx(alone, abs=1e-4)


def test_the_prompt_is_the_chat_user_message(tiny_llama_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    prompts, label_ids = classification_prompt.encode_prompts(
        tokenizer, ["so good"], ["fresh", "rotten"], "Review: {text}\nOne of {labels}?", max_length=32)
    rendered = tokenizer.decode(prompts[0])
    assert "<|im_start|>user\nReview: so good\nOne of fresh, rotten?<|im_end|>" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(label_ids[0]) == "fresh"


def test_zero_shot_run_prompts_a_causal_lm(tmp_path, tiny_llama_dir, tiny_bert_dir, data_files):
    written = {}
    for kind, model_dir in (("llama", tiny_llama_dir), ("bert", tiny_bert_dir)):
        recipe = tiny_recipe("classification", "lora", model_dir, data_files)
        (tmp_path / f"{kind}.toml").write_bytes(tomli_w.dumps(recipe).encode())
        assert main(["zero-shot", str(tmp_path / f"{kind}.toml"), "--output", str(tmp_path / kind)]) == 0
        written[kind] = json.loads((tmp_path / kind / "metrics.json").read_text())
        info = json.loads((tmp_path / kind / "run.json").read_text())
        assert info["method"] == "zero-shot" and info["trainable_params"] == 0
    llama, bert = written["llama"], written["bert"]
    assert llama["zero_shot_prompt"] == classification_prompt.DEFAULT_PROMPT and "zero_shot_prompt" not in bert
    for metrics in (llama, bert):
        assert 0 <= metrics["eval_accuracy"] <= 1 and metrics["eval_loss"] > 0
        assert sum(v["support"] for v in metrics["per_label"].values()) == 32


@pytest.mark.parametrize("template, problem", [("Classify: {labels}", "must contain {text}"),
                                               ("{text} as {label}", "only {text} and {labels}")])
def test_a_bad_prompt_template_names_the_field(tmp_path, tiny_bert_dir, data_files, template, problem):
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files)
    recipe["task"]["zero_shot_prompt"] = template
    path = tmp_path / "r.toml"
    path.write_bytes(tomli_w.dumps(recipe).encode())
    with pytest.raises(UserError) as err:
        from adapterkit.plan import make_plan

        make_plan(load_recipe(path))
    assert "task.zero_shot_prompt" in str(err.value) and problem in str(err.value)
