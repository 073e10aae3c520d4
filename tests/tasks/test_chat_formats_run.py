"""A chat run end to end on an alpaca file and on a sharegpt JSON list, without any other option, on a tiny
Llama whose tokenizer has no chat template: the run gets the default template with a warning, trains, and
saves the template with the adapter (so serving renders the same turns)."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from conftest import tiny_recipe

from adapterkit import api
from adapterkit.recipe import recipe_from_dict


@pytest.mark.integration
def test_alpaca_and_sharegpt_files_train_a_model_without_a_chat_template(tmp_path, tiny_llama_dir, data_files,
                                                                        caplog):
    from transformers import AutoTokenizer

    model = tmp_path / "no-template"
    shutil.copytree(tiny_llama_dir, model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = None
    for name in ("chat_template.jinja", "chat_template.json"):
        (model / name).unlink(missing_ok=True)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    assert AutoTokenizer.from_pretrained(model).chat_template is None

    chats = [json.loads(line)["messages"] for line in data_files["chat_train"].read_text().splitlines()]
    alpaca = [{"instruction": c[0]["content"], "input": "", "output": c[1]["content"]} for c in chats]
    sharegpt = [{"conversations": [{"from": {"user": "human", "assistant": "gpt"}[m["role"]], "value": m["content"]}
                                   for m in c]} for c in chats]
    files = {"alpaca": tmp_path / "alpaca.json", "sharegpt": tmp_path / "sharegpt.json"}
    files["alpaca"].write_text(json.dumps(alpaca))
    files["sharegpt"].write_text(json.dumps(sharegpt))
    for fmt, path in files.items():
        recipe = tiny_recipe("chat", "lora", str(model), data_files, train={"max_steps": 2})
        recipe["data"] = {"train": str(path), "eval": 0.25}
        with caplog.at_level(logging.WARNING, logger="adapterkit"):
            result = api.run(recipe_from_dict(recipe, source=str(tmp_path / f"{fmt}.toml")), output=tmp_path / fmt)
        assert result.metrics["eval_loss"] > 0, fmt
        assert "no chat template" in caplog.text
        saved = AutoTokenizer.from_pretrained(next(result.run_dir.rglob("tokenizer_config.json")).parent)
        assert saved.chat_template, fmt
