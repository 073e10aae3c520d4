"""What a chat run trains and evaluates on is what it says: conversations that ``task.max_length`` cuts before
their first assistant token are left out with a count in the log, and run.json's example counts, the eval loss
and the generated answers cover the same conversations."""

from __future__ import annotations

import json
import logging

from adapterkit import api
from adapterkit.recipe import recipe_from_dict

SHORT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
LONG = {"messages": [{"role": "system", "content": "word " * 200}, {"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "hello"}]}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_conversations_cut_before_their_answer_are_counted_and_left_out_of_every_figure(tmp_path, tiny_llama_dir,
                                                                                        caplog):
    recipe = recipe_from_dict({
        "model": {"name": tiny_llama_dir}, "method": {"name": "lora"},
        "task": {"name": "chat", "max_length": 48, "num_samples": 0, "max_new_tokens": 2,
                 "generate_eval": ["exact_match"]},
        "data": {"train": write(tmp_path / "train.jsonl", [SHORT] * 6 + [LONG] * 2),
                 "eval": write(tmp_path / "eval.jsonl", [SHORT] * 3 + [LONG])},
        "train": {"max_steps": 1, "batch_size": 2}, "hardware": {"precision": "fp32"}}, source=str(tmp_path / "r.toml"))
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        result = api.run(recipe, output=tmp_path / "run")
    assert "2 of 8 train conversations are cut by task.max_length = 48 before their first assistant token" in caplog.text
    assert "1 of 4 eval conversations are cut" in caplog.text
    info = json.loads((result.run_dir / "run.json").read_text())
    assert (info["train_examples"], info["eval_examples"]) == (6, 3)
    assert len((result.run_dir / "generations.jsonl").read_text().splitlines()) == 3
