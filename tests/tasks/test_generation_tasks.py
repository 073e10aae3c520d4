"""Generation-scored evaluation (``task.generate_eval``) and the seq2seq and lm tasks, on tiny models saved with
save_pretrained and loaded back through adapterkit's loader."""

from __future__ import annotations

import json
import math

import pytest
from conftest import tiny_recipe

from adapterkit import api
from adapterkit.errors import UserError
from adapterkit.recipe import recipe_from_dict


def test_generation_scores_match_hand_computed_values():
    from adapterkit.metrics import load_metric

    metric = load_metric("generation_scores")
    same = metric.compute(predictions=["the cat sat on the mat"], references=["the cat sat on the mat"],
                          scores=["rouge", "bleu", "chrf", "exact_match"])
    assert same == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "bleu": 100.0, "chrf": 100.0,
                                  "exact_match": 1.0})
    # 3 of 3 predicted words in a 4-word reference: P = 1, R = 0.75, F = 6/7; exact match after lowercasing
    found = metric.compute(predictions=["the cat sat", "Hello  World"], references=["the cat sat down", "hello world"],
                           scores=["rouge", "exact_match"])
    assert found["rougeL"] == pytest.approx((6 / 7 + 1.0) / 2)
    assert found["exact_match"] == pytest.approx(0.5)
    assert set(found) == {"rouge1", "rouge2", "rougeL", "exact_match"}


def test_batched_answers_equal_one_at_a_time(smollm_dir):
    """Left-padded batches give each prompt the greedy answer it gets alone (the packaged SmolLM2: a random
    tiny model answers with special tokens only, which decode to nothing)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapterkit.tasks.chat.answers import generate_answers

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm_dir)
    prompts = [[{"role": "user", "content": text}] for text in
               ("Hi", "What is the longest river in the whole of South America, please?", "Tell me a joke")]
    alone = generate_answers(model, tokenizer, prompts, max_new_tokens=6, batch_size=1)
    assert generate_answers(model, tokenizer, prompts, max_new_tokens=6, batch_size=3) == alone
    assert all(alone)


def test_chat_generate_eval_scores_the_eval_split(tmp_path, tiny_llama_dir, data_files):
    from rouge_score import rouge_scorer

    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, data_files, train={"max_steps": 1},
                         data={"limit_eval": 4})
    recipe["task"].update(generate_eval=["rouge", "bleu"], max_new_tokens=6)
    result = api.run(recipe_from_dict(recipe), output=tmp_path / "run")
    rows = [json.loads(line) for line in (result.run_dir / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["prompt"][-1]["role"] == "user" for r in rows)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = sum(scorer.score(r["reference"], r["generated"])["rougeL"].fmeasure for r in rows) / len(rows)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["eval_rougeL"] == pytest.approx(expected)
    assert 0 <= metrics["eval_bleu"] <= 100 and "eval_chrf" not in metrics
    from adapterkit.results import from_run  # what `adapterkit compare` tabulates

    quality = from_run(result.run_dir, method="lora", seed=0)["quality"]
    assert quality["eval_rougeL"] == metrics["eval_rougeL"] and "eval_bleu" in quality


def _seq2seq_model(arch: str, tmp_path, minilm_dir) -> str:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from adapterkit.support import tiny_config

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    folder = tmp_path / f"tiny-{arch}"
    torch.manual_seed(0)
    AutoModelForSeq2SeqLM.from_config(tiny_config(arch, vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _seq2seq_recipe(model_dir, tmp_path, method="lora", **task):
    pairs = [("translate: one", "un"), ("translate: two", "deux"), ("translate: three", "trois"),
             ("translate: four", "quatre")]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in pairs))
    return recipe_from_dict({
        "name": "tiny_seq2seq", "model": {"name": model_dir}, "method": {"name": method},
        "task": {"name": "seq2seq", "max_length": 16, "max_new_tokens": 6,
                 "generate_eval": ["rouge", "bleu", "exact_match"], **task},
        "data": {"train": str(path), "eval": str(path)},
        "train": {"max_steps": 60, "batch_size": 4, "seed": 0, "learning_rate": 2e-2, "logging_steps": 20},
        "hardware": {"profile": "auto", "precision": "fp32"}})


@pytest.mark.integration
def test_tiny_t5_learns_its_targets(tmp_path, minilm_dir):
    """A tiny T5 memorises four pairs, and each greedy answer is scored beside its own reference (the eval order
    is kept; LoRA on T5 and BART is trained and reloaded by the architecture matrix)."""
    recipe = _seq2seq_recipe(_seq2seq_model("t5", tmp_path, minilm_dir), tmp_path, method="full")
    result = api.run(recipe, output=tmp_path / "run")
    rows = [json.loads(line) for line in (result.run_dir / "generations.jsonl").read_text().splitlines()]
    assert [r["reference"] for r in rows] == ["un", "deux", "trois", "quatre"]
    assert result.metrics["eval_exact_match"] >= 0.75, rows
    assert result.metrics["eval_rougeL"] >= 0.75 and result.metrics["eval_perplexity"] < 2.0
    assert (result.run_dir / "samples.jsonl").read_text().splitlines()[0] == json.dumps(rows[0])


def test_seq2seq_refusals_are_one_line_before_loading(tmp_path, minilm_dir, tiny_llama_dir):
    from adapterkit.preflight import preflight

    t5 = _seq2seq_model("t5", tmp_path, minilm_dir)
    with pytest.raises(UserError, match=r"method\.name: no adapter points known for model type 't5'"):
        preflight(_seq2seq_recipe(t5, tmp_path, method="bottleneck"))
    with pytest.raises(UserError, match=r"task\.name: task 'seq2seq' needs a model with a AutoModelForSeq2SeqLM"):
        preflight(_seq2seq_recipe(tiny_llama_dir, tmp_path))
    assert preflight(_seq2seq_recipe(t5, tmp_path, method="prompt")).plan.method.name == "prompt"


def test_lm_packs_plain_text_into_blocks_and_trains(tmp_path, tiny_llama_dir):
    from transformers import AutoTokenizer

    from adapterkit.tasks.lm import packed, text_file_rows

    words = "the quick brown fox jumps over the lazy dog and keeps running far away".split()
    paragraphs = [" ".join(words[k:] + words[:k]) for k in range(12)]
    (tmp_path / "train.txt").write_text("\n\n".join(paragraphs[:10]) + "\n")
    (tmp_path / "eval.txt").write_text("\n\n\n".join(paragraphs[10:]))
    rows = text_file_rows(tmp_path / "train.txt")
    assert [r["text"] for r in rows] == paragraphs[:10] and rows[1]["_where"].endswith("train.txt:3")

    from datasets import Dataset

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    blocks = packed(Dataset.from_dict({"text": paragraphs[:10]}), tokenizer, 16)
    flat = [t for text in paragraphs[:10] for t in tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]]
    assert len(blocks) == len(flat) // 16 and all(len(b) == 16 for b in blocks["input_ids"])
    assert [t for b in blocks["input_ids"] for t in b] == flat[:len(blocks) * 16]
    assert blocks["labels"] == blocks["input_ids"]

    recipe = recipe_from_dict({
        "name": "tiny_lm", "model": {"name": tiny_llama_dir}, "method": {"name": "lora"},
        "task": {"name": "lm", "max_length": 16},
        "data": {"train": str(tmp_path / "train.txt"), "eval": str(tmp_path / "eval.txt")},
        "train": {"max_steps": 2, "batch_size": 2, "seed": 0}, "hardware": {"profile": "auto", "precision": "fp32"}})
    result = api.run(recipe, output=tmp_path / "run")
    assert result.info["steps"] == 2 and result.info["train_tokens"] == 2 * 2 * 16
    assert result.metrics["eval_perplexity"] == pytest.approx(math.exp(result.metrics["eval_loss"]))
    assert isinstance(api.generate(result.run_dir, "the quick brown", max_new_tokens=3), str)  # plain continuation


def test_seq2seq_counts_targets_cut_at_max_target_length(tmp_path, minilm_dir, caplog):
    import logging

    from datasets import Dataset
    from transformers import AutoTokenizer

    from adapterkit.tasks.seq2seq import TASK, Seq2SeqOptions

    rows = Dataset.from_dict({"source": ["one", "two"], "target": ["un", " ".join(["deux"] * 20)]})
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        TASK.tokenize(rows, AutoTokenizer.from_pretrained(minilm_dir), Seq2SeqOptions(max_target_length=8))
    assert "1 of 2 targets reach task.max_target_length = 8 tokens" in caplog.text
