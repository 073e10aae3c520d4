"""``task.system_prompt`` trains every conversation under that system turn; the run's saved chat template makes
it the default, so ``generate``, ``chat``, ``serve`` and the exports (which render a user's turns with the saved
tokenizer) answer under the prompt the model was trained with, not the template's stock one."""

from __future__ import annotations

import json

from adapterkit import api
from adapterkit.recipe import recipe_from_dict

PIRATE = 'Answer like a "pirate".'


def test_the_trained_system_prompt_is_the_saved_templates_default(tmp_path, tiny_llama_dir):
    from transformers import AutoTokenizer

    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "arr"}]}] * 4
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = recipe_from_dict({
        "model": {"name": tiny_llama_dir}, "method": {"name": "lora"},
        "task": {"name": "chat", "max_length": 64, "system_prompt": PIRATE, "num_samples": 0},
        "data": {"train": str(tmp_path / "chat.jsonl"), "eval": str(tmp_path / "chat.jsonl")},
        "train": {"max_steps": 1, "batch_size": 2}, "hardware": {"precision": "fp32"}}, source=str(tmp_path / "r.toml"))
    result = api.run(recipe, output=tmp_path / "run")
    saved = AutoTokenizer.from_pretrained(result.artifact_dir)
    user = [{"role": "user", "content": "hi"}]
    served = saved.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    trained = saved.apply_chat_template([{"role": "system", "content": PIRATE}, *user], tokenize=False,
                                        add_generation_prompt=True)
    assert served == trained
    other = saved.apply_chat_template([{"role": "system", "content": "Be brief."}, *user], tokenize=False)
    assert PIRATE not in other  # a conversation's own system turn still wins
