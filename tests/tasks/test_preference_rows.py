"""Preference rows as datasets hold them: a prompt repeated at the start of chosen and rejected (conversations
written whole beside their prompt, or prompt text + answer text) reaches trl once, with a count in the log."""

from __future__ import annotations

import json
import logging

from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict

QUESTION = "Capital of France?"
CONVERSATION = {"prompt": [{"role": "user", "content": QUESTION}],
                "chosen": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Paris"}],
                "rejected": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Rome"}]}
TEXT = {"prompt": QUESTION, "chosen": f"{QUESTION} Paris", "rejected": f"{QUESTION} Rome"}
UNREPEATED = {"prompt": "A", "chosen": "Apple", "rejected": "Avocado"}  # starts alike, repeats nothing


def load(tmp_path, rows, loss="dpo"):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"},
                               "task": {"name": "preference", "loss": loss},
                               "data": {"train": str(path), "eval": str(path)}}, source=str(tmp_path / "r.toml"))
    plan = make_plan(recipe)
    return plan.task.load_data(plan)


def test_a_prompt_repeated_in_every_answer_reaches_trl_once(tmp_path, tiny_llama_dir, caplog):
    from transformers import AutoTokenizer
    from trl.data_utils import maybe_apply_chat_template

    from adapterkit.tasks.preference.rows import normalised

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        data = load(tmp_path, [CONVERSATION, TEXT, UNREPEATED])
    assert "2 of 3 train rows repeat their prompt at the start of every answer" in caplog.text
    columns = normalised(data.train, chat=True, unpair=False)
    for i in range(2):
        example = maybe_apply_chat_template({k: v[i] for k, v in columns.items()}, tokenizer)  # as trl renders it
        assert (example["prompt"] + example["chosen"]).count(QUESTION) == 1
        assert example["chosen"].lstrip().startswith("Paris") and example["rejected"].lstrip().startswith("Rome")
    assert (data.train[2]["chosen"], data.train[2]["rejected"]) == ("Apple", "Avocado")


def test_a_kto_completion_repeating_its_prompt_loses_the_repeat(tmp_path):
    row = {"prompt": CONVERSATION["prompt"], "completion": CONVERSATION["chosen"], "label": True}
    data = load(tmp_path, [row, row], loss="kto")
    assert data.train[0]["completion"] == [{"role": "assistant", "content": "Paris"}]


def test_pairs_cut_at_max_length_are_counted(tmp_path, tiny_llama_dir, caplog):
    from adapterkit import api

    short = {"prompt": "hi", "chosen": "hello", "rejected": "go away"}
    long = {"prompt": "word " * 100, "chosen": "hello", "rejected": "go away"}  # the prompt alone fills 64 tokens
    wordy = {"prompt": "hi", "chosen": "yes " * 60, "rejected": "no"}  # its chosen answer runs past 64 tokens
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [short] * 3 + [wordy, long, long]))
    recipe = recipe_from_dict({"model": {"name": tiny_llama_dir}, "method": {"name": "lora"},
                               "task": {"name": "preference", "max_length": 64, "num_samples": 0},
                               "data": {"train": str(path), "eval": str(path)},
                               "train": {"max_steps": 1, "batch_size": 2}, "hardware": {"precision": "fp32"}},
                              source=str(tmp_path / "r.toml"))
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        result = api.run(recipe, output=tmp_path / "run")
    assert (result.info["train_examples"], result.info["eval_examples"]) == (4, 4)  # the rows trl trained and scored
    assert "2 of 6 train rows are left out: the prompt alone fills task.max_length = 64 tokens" in caplog.text
    assert "1 of 4 train rows are cut at task.max_length = 64 tokens (prompt + answer, the end goes)" in caplog.text
    assert "2 of 6 eval rows are left out" in caplog.text and "1 of 4 eval rows are cut" in caplog.text
