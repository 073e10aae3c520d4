"""Data formats a user's files come in, each read from a small file written in that format: OpenAI messages
(content as a string or a list of parts), sharegpt, alpaca, prompt/completion (JSON lists and JSONL); rows
of another task's format, or of no format, refused in one line that says what to do; ``data.columns``
mapping a file's own column names; ``save_to_disk`` folders by every path form."""

from __future__ import annotations

import json

import pytest

from adapterkit.errors import UserError
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict

SHAREGPT = [  # LLaMA-Factory's data/glaive_toolcall / sharegpt demo shape, a JSON list
    {"conversations": [{"from": "human", "value": "Hi, who are you?"}, {"from": "gpt", "value": "An assistant."},
                       {"from": "human", "value": "What is 2 + 2?"}, {"from": "gpt", "value": "4."}],
     "system": "Be brief."},
    {"conversations": [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Blue."}]},
]
ALPACA = [  # LLaMA-Factory's alpaca_en_demo.json shape, with the optional system and history
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "Name a prime.", "input": "", "output": "7", "system": "Answer with a number.",
     "history": [["Name an even number.", "2"]]},
]
PROMPT_COMPLETION = [
    {"prompt": "The capital of France is", "completion": "Paris."},
    {"prompt": [{"role": "user", "content": "Capital of Italy?"}], "completion": [{"role": "assistant",
                                                                                   "content": "Rome."}]},
]
PARTS = [  # OpenAI's multimodal shape with text parts only, and LLaMA-Factory v1's "value" parts
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
                  {"role": "assistant", "content": [{"type": "text", "value": "Hi!"}]}]},
    {"messages": [{"role": "user", "content": "Plain string"}, {"role": "assistant", "content": "Fine."}]},
]


def write(path, rows, as_list: bool):
    path.write_text(json.dumps(rows) if as_list else "".join(json.dumps(r) + "\n" for r in rows))
    return path


def load(tmp_path, rows, suffix=".jsonl", task="chat", eval_rows=None, train_options=None, **data):
    train = write(tmp_path / f"train{suffix}", rows, suffix == ".json")
    evaluation = write(tmp_path / f"eval{suffix}", eval_rows or rows, suffix == ".json")
    recipe = recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"}, "task": {"name": task},
                               "data": {"train": str(train), "eval": str(evaluation), **data},
                               **({"train": train_options} if train_options else {})},
                              source=str(tmp_path / "r.toml"))
    plan = make_plan(recipe)
    return plan.task.load_data(plan)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_sharegpt_reads_as_messages_with_its_system_prompt(tmp_path, suffix):
    data = load(tmp_path, SHAREGPT, suffix)
    first = data.train[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant"]
    assert first[0]["content"] == "Be brief." and first[4]["content"] == "4."
    assert data.train[1]["messages"][1] == {"role": "assistant", "content": "Blue."}


def test_role_content_turns_under_the_conversations_column_read_as_messages(tmp_path):
    rows = [{"conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}] * 2
    assert load(tmp_path, rows).train[0]["messages"] == rows[0]["conversations"]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_alpaca_reads_instruction_input_history_and_system(tmp_path, suffix):
    data = load(tmp_path, ALPACA, suffix)
    assert data.train[0]["messages"] == [{"role": "user", "content": "Translate to French.\nGood morning"},
                                         {"role": "assistant", "content": "Bonjour"}]
    assert [(m["role"], m["content"]) for m in data.train[1]["messages"]] == [
        ("system", "Answer with a number."), ("user", "Name an even number."), ("assistant", "2"),
        ("user", "Name a prime."), ("assistant", "7")]


def test_prompt_completion_as_strings_and_as_message_lists(tmp_path):
    data = load(tmp_path, PROMPT_COMPLETION)
    assert data.train[0]["messages"] == [{"role": "user", "content": "The capital of France is"},
                                         {"role": "assistant", "content": "Paris."}]
    assert data.train[1]["messages"][1] == {"role": "assistant", "content": "Rome."}


def test_content_given_as_text_parts_reads_as_text(tmp_path):
    data = load(tmp_path, PARTS)
    assert data.train[0]["messages"] == [{"role": "user", "content": "Hello\nthere"},
                                         {"role": "assistant", "content": "Hi!"}]


def test_a_non_text_part_or_a_tool_turn_is_a_bad_row_named_in_one_line(tmp_path):
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]},
                          {"role": "assistant", "content": "A cat."}]}
    with pytest.raises(UserError, match=r"train\.jsonl:3: message 1's content holds a 'image_url' part"):
        load(tmp_path, [*PARTS, image])
    tool = {"conversations": [{"from": "human", "value": "Weather?"},
                              {"from": "function_call", "value": '{"name": "weather"}'},
                              {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "Sunny."}]}
    with pytest.raises(UserError) as info:
        load(tmp_path, [*SHAREGPT, tool])
    assert "train.jsonl:3: message 2 is a tool turn ('function_call')" in str(info.value)
    assert "\n" not in str(info.value) and "data.roles" in str(info.value)
    data = load(tmp_path, [*SHAREGPT, tool], on_error="skip")  # or dropped and counted
    assert data.skipped_rows == 2 and len(data.train) == 2


def test_role_names_are_configurable(tmp_path):
    rows = [{"conversations": [{"from": "person", "value": "Hi"}, {"from": "bot", "value": "Hello"}]}] * 2
    with pytest.raises(UserError, match="got 'person'"):
        load(tmp_path, rows)
    data = load(tmp_path, rows, roles={"person": "user", "bot": "assistant"})
    assert data.train[0]["messages"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def test_data_format_overrides_detection(tmp_path):
    rows = [{"prompt": "Say yes.", "completion": "Yes.", "label": True}] * 2  # detected as KTO preference rows
    with pytest.raises(UserError, match="task 'preference'"):
        load(tmp_path, rows)
    data = load(tmp_path, rows, format="prompt_completion")
    assert data.train[0]["messages"][1]["content"] == "Yes."


def test_preference_rows_name_the_preference_task_and_text_rows_the_lm_task(tmp_path):
    pairs = [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}] * 2
    with pytest.raises(UserError) as info:
        load(tmp_path, pairs)
    assert "preference pairs (prompt, chosen, rejected); train them with task 'preference'" in str(info.value)
    with pytest.raises(UserError, match="train them with task 'lm'"):
        load(tmp_path, [{"text": "Once upon a time."}] * 2)


def test_columns_matching_no_format_say_what_was_found_and_how_to_map(tmp_path):
    rows = [{"question": "Hi?", "answer": "Hello."}] * 2
    with pytest.raises(UserError) as info:
        load(tmp_path, rows)
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'r.toml'}: data.train ({tmp_path / 'train.jsonl'}): ") and "\n" not in text
    assert "columns question, answer" in text and "(sharegpt)" in text and "(alpaca)" in text
    assert "data.columns" in text
    data = load(tmp_path, rows, columns={"prompt": "question", "completion": "answer"})
    assert data.train[0]["messages"][1] == {"role": "assistant", "content": "Hello."}


def test_an_imdb_style_csv_for_classification_is_told_how_to_map_its_columns(tmp_path):
    csv = "review,sentiment\n" + "A wonderful film.,positive\nDull and long.,negative\n" * 3
    for name in ("train.csv", "eval.csv"):
        (tmp_path / name).write_text(csv)

    def plan(**data):
        return make_plan(recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"},
                                           "task": {"name": "classification"},
                                           "data": {"train": str(tmp_path / "train.csv"),
                                                    "eval": str(tmp_path / "eval.csv"), **data}},
                                          source=str(tmp_path / "r.toml")))

    with pytest.raises(UserError) as info:
        plan().task.load_data(plan())
    text = str(info.value)
    assert "\n" not in text and f"reads columns text + label, but {tmp_path / 'train.csv'} has review, sentiment" in text
    assert 'data.columns = {text = "review", label = "sentiment"}' in text
    mapped = plan(columns={"text": "review", "label": "sentiment"})
    data = mapped.task.load_data(mapped)
    assert data.labels == ["negative", "positive"] and data.train[0]["text"] == "A wonderful film."
    with pytest.raises(UserError, match="data.columns names 'body', which the data does not have"):
        plan(columns={"text": "body"}).task.load_data(plan(columns={"text": "body"}))


@pytest.mark.parametrize("fmt", ["messages", "sharegpt"])
def test_an_assistant_turn_weighted_0_is_context_not_trained(tmp_path, smollm_dir, fmt):
    """OpenAI's fine-tuning format (and sharegpt files after it) marks an assistant turn ``"weight": 0`` to keep it
    as context without training on it: the loaded conversation keeps the mark and the loss mask leaves the turn
    out, while the other answer is trained; a weight other than 0 or 1 is a bad row named in one line, and so is a
    conversation whose every answer is weighted 0."""
    from transformers import AutoTokenizer

    from adapterkit.tasks.chat.template import encode

    role, content, user, bot = ("role", "content", "user", "assistant") if fmt == "messages" else \
        ("from", "value", "human", "gpt")
    column = "messages" if fmt == "messages" else "conversations"
    turns = [{role: user, content: "Hi"}, {role: bot, content: "Sorry, wrong answer.", "weight": 0},
             {role: user, content: "Again?"}, {role: bot, content: "Right answer.", "weight": 1}]
    row = load(tmp_path, [{column: turns}] * 2).train[0]
    assert row["context_turns"] == [1] and row["messages"][1] == {"role": "assistant", "content": "Sorry, wrong answer."}
    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    enc = encode(tokenizer, row["messages"], True, row["context_turns"])
    trained = tokenizer.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m])
    assert "Right answer." in trained and "wrong" not in trained
    unweighted = encode(tokenizer, row["messages"])
    assert sum(unweighted["assistant_masks"]) > sum(enc["assistant_masks"])  # without the mark both turns train
    stream = load(tmp_path, [{column: turns}] * 2, train_options={"max_steps": 1}, streaming=True).train
    streamed = next(iter(stream))  # data.streaming: the same
    assert (streamed["messages"], streamed["context_turns"]) == (row["messages"], [1])
    bad = [{column: [{role: user, content: "Hi"}, {role: bot, content: "Yes.", "weight": 0.5}]}] * 2
    with pytest.raises(UserError, match=r"message 2's weight must be 0 \(context, not trained\) or 1, got 0\.5"):
        load(tmp_path, bad)
    silent = [{column: [{role: user, content: "Hi"}, {role: bot, content: "Yes.", "weight": 0}]}] * 2
    with pytest.raises(UserError, match="every assistant turn after a user turn has weight 0: nothing to train on"):
        load(tmp_path, silent)


def test_weight_0_holds_without_assistant_only_loss_and_in_the_generation_reference(smollm_dir):
    """With task.assistant_only_loss = false the whole conversation trains but a weight-0 turn; the generation eval
    and samples score the last *trained* answer, not a weight-0 turn after it."""
    from transformers import AutoTokenizer

    from adapterkit.tasks.chat.answers import prompts_and_references
    from adapterkit.tasks.chat.template import encode

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Right answer."},
                {"role": "user", "content": "More?"}, {"role": "assistant", "content": "Sorry, wrong answer."}]
    enc = encode(tokenizer, messages, assistant_only=False, context=[3])
    trained = tokenizer.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m])
    assert "Hi" in trained and "More?" in trained and "Right answer." in trained and "wrong" not in trained
    assert all(encode(tokenizer, messages, assistant_only=False)["assistant_masks"])
    prompts, references = prompts_and_references([messages, messages], [[3], []])
    assert references == ["Right answer.", "Sorry, wrong answer."] and prompts[0] == messages[:1]
