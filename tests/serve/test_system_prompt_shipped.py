"""A chat run trained with ``task.system_prompt`` is prompted with it wherever it ships: ``generate``, the server,
``adapterkit chat`` (all through the run's tokenizer) and the merged / GGUF exports (their chat template, the
Modelfile's SYSTEM line). Before, only training used it: the shipped model got the template's default instead."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_recipe
from serve_runs import one_answer_data, train

from adapterkit import api
from adapterkit.serve.answer import prompt_ids
from adapterkit.serve.engine import close, open_runs
from adapterkit.tasks.chat.template import template_with_system, with_system

SYSTEM = 'You are Pete, a "pirate"\n{% raw %} é 😀 \\ end'  # quotes, a newline, Jinja syntax, non-ASCII, a backslash
ASK = [{"role": "user", "content": "question 3"}]


@pytest.fixture(scope="module")
def pirate(tmp_path_factory, tiny_llama_dir):
    folder = tmp_path_factory.mktemp("pirate")
    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, one_answer_data(folder, "pirate", "arr arr"),
                         train={"max_steps": 1})
    recipe["task"].update({"num_samples": 0, "system_prompt": SYSTEM})
    recipe["name"] = "pirate"
    return train(folder, recipe)


def trained_view(tokenizer, messages):
    """The prompt as training rendered it: ``task.system_prompt`` prepended to the rows (``with_system``)."""
    return tokenizer.apply_chat_template(with_system(messages, SYSTEM), add_generation_prompt=True, tokenize=False)


def test_generate_and_serve_prompt_the_model_as_training_did(pirate):
    plan, tokenizer, _model, _data = api.reopen(pirate)
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(pirate / "adapter")  # the template as the run saved it
    assert tokenizer.apply_chat_template(ASK, add_generation_prompt=True, tokenize=False) == trained_view(saved, ASK)
    served = open_runs([pirate])
    try:
        model = served["pirate"]
        assert prompt_ids(model, ASK) == saved(trained_view(saved, ASK), add_special_tokens=False)["input_ids"]
        own = [{"role": "system", "content": "Be brief."}, *ASK]  # a request's own system prompt still wins
        assert prompt_ids(model, own) == saved(trained_view(saved, own), add_special_tokens=False)["input_ids"]
    finally:
        close(served)


def test_the_merged_and_gguf_exports_carry_it(pirate, tmp_path):
    from transformers import AutoTokenizer

    from adapterkit.export import export

    export(pirate, "merged", output=tmp_path / "merged")
    shipped = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert shipped.apply_chat_template(ASK, add_generation_prompt=True, tokenize=False) == trained_view(shipped, ASK)
    record = export(pirate, "gguf", dtype="q8_0", output=tmp_path / "gguf")
    modelfile = (tmp_path / "gguf" / "Modelfile").read_text()
    assert f'SYSTEM """{SYSTEM}"""' in modelfile, modelfile
    assert record["check"]["passed"]


def test_without_a_system_prompt_the_template_is_left_alone(tiny_llama_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    template = tokenizer.chat_template
    from adapterkit.tasks.chat.template import ship_tokenizer

    ship_tokenizer(tokenizer, None)
    assert tokenizer.chat_template == template
    tokenizer.chat_template = template_with_system(template, SYSTEM)
    assert tokenizer.apply_chat_template(ASK, tokenize=False).startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>")


def test_the_system_prompt_opens_the_template_once(tiny_llama_dir):
    """Training saves the template with the prompt, loading applies it again (for runs saved before): once in all."""
    from transformers import AutoTokenizer

    from adapterkit.tasks.chat.template import ship_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    ship_tokenizer(tokenizer, SYSTEM)
    once = tokenizer.chat_template
    ship_tokenizer(tokenizer, SYSTEM)
    assert tokenizer.chat_template == once and once.count(json.dumps(SYSTEM, ensure_ascii=False)) == 1
