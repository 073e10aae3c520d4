"""NER eval over whole sentences: an entity past ``task.max_length`` keeps its gold tag and counts as missed
(the log says how many), instead of vanishing from the gold and leaving recall as if it were not there."""

from __future__ import annotations

import json
import logging

from adapterkit import api
from adapterkit.recipe import recipe_from_dict

SHORT = {"tokens": ["John", "went", "to", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"]}
LONG = {"tokens": ["word"] * 30 + ["Paris"], "tags": ["O"] * 30 + ["B-LOC"]}  # its entity lies past 16 tokens


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_entities_past_max_length_count_as_missed(tmp_path, tiny_bert_dir, caplog):
    recipe = recipe_from_dict({
        "model": {"name": tiny_bert_dir}, "method": {"name": "lora"}, "task": {"name": "ner", "max_length": 16},
        "data": {"train": write(tmp_path / "train.jsonl", [SHORT] * 8),
                 "eval": write(tmp_path / "eval.jsonl", [LONG, LONG, SHORT, SHORT])},
        "train": {"max_steps": 1, "batch_size": 4}, "hardware": {"precision": "fp32"}}, source=str(tmp_path / "r.toml"))
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        result = api.run(recipe, output=tmp_path / "run")
    assert "2 eval entities begin past task.max_length = 16 tokens" in caplog.text
    per_type = result.metrics["per_type"]
    assert per_type["LOC"]["support"] == 4 and per_type["PER"]["support"] == 2  # every gold entity is scored
    assert per_type["LOC"]["recall"] <= 0.5  # the two past the limit are missed whatever the model predicts
