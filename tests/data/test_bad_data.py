"""Bad data rows: each kind is reported with its file and line (``data.on_error = "fail"``, the default), or
dropped and counted with ``"skip"``, the count reaching run.json and the log (a split keeps good rows beside
the bad one: skipping a whole split is refused, see test_realistic_data.py). Texts over ``task.max_length``
are truncated, with a warning that counts them."""

from __future__ import annotations

import json
import logging

import pytest

from adapterkit import api
from adapterkit.data.files import read_file
from adapterkit.errors import UserError
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict

CLS = [{"text": "a fine film", "label": "pos"}, {"text": "a dull film", "label": "neg"}] * 4
NER = [{"tokens": ["John", "ran"], "tags": ["B-person", "O"]}, {"tokens": ["in", "Paris"], "tags": ["O", "B-loc"]}] * 4
CHAT = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}] * 4


def lines(rows) -> list[str]:
    return [json.dumps(r) for r in rows]


# (task, good rows, which split is bad, the bad file's lines, the bad line's number, what the message says)
CASES = {
    "broken JSON": ("classification", CLS, "train", [*lines(CLS), '{"text": "x", "label": '], 9, "not valid JSON"),
    "not an object": ("classification", CLS, "train", [*lines(CLS[:2]), "[1, 2]"], 3, "expected a JSON object"),
    "empty text": ("classification", CLS, "train", [*lines(CLS), json.dumps({"text": " ", "label": "pos"})], 9,
                   "column 'text' is missing or empty"),
    "missing label": ("classification", CLS, "eval", [json.dumps({"text": "x"}), *lines(CLS[:2])], 1,
                      "column 'label' is missing"),
    "unknown eval label": ("classification", CLS, "eval", [*lines(CLS[:2]), json.dumps({"text": "x", "label": "meh"})],
                           3, "label 'meh' was not seen in train"),
    "tokens/tags lengths": ("ner", NER, "train", [*lines(NER), json.dumps({"tokens": ["a", "b", "c"], "tags": ["O"]})],
                            9, "3 tokens but 1 tags"),
    "not BIO": ("ner", NER, "train", [json.dumps({"tokens": ["a"], "tags": ["PER"]}), *lines(NER)], 1, "is not BIO"),
    "unknown eval tag": ("ner", NER, "eval", [json.dumps({"tokens": ["a"], "tags": ["B-org"]}), *lines(NER[:2])], 1,
                         "tag 'B-org'"),
    "no assistant turn": ("chat", CHAT, "train", [*lines(CHAT), json.dumps({"messages": [{"role": "user",
                                                                                            "content": "hi"}]})],
                          5, "conversation has no assistant turn"),
    "empty answer": ("chat", CHAT, "train", [*lines(CHAT), json.dumps({"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]})], 5,
        "message 2 is an empty assistant answer"),
    "bad role": ("chat", CHAT, "eval", [json.dumps({"messages": [{"role": "bot", "content": "x"}]}),
                                        *lines(CHAT[:2])], 1,
                 "message 1 needs role"),
}


def plan_for(tmp_path, task, good, bad_split, bad_lines, suffix=".jsonl", on_error="fail", **task_options):
    files = {}
    for split in ("train", "eval"):
        files[split] = tmp_path / f"{split}{suffix}"
        content = bad_lines if split == bad_split else lines(good)
        files[split].write_text("\n".join(content) + "\n")
    recipe = recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"},
                               "task": {"name": task, **task_options},
                               "data": {"train": str(files["train"]), "eval": str(files["eval"]), "on_error": on_error}},
                              source=str(tmp_path / "r.toml"))
    return make_plan(recipe), files[bad_split]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_rows_name_file_and_line_or_are_skipped(case, tmp_path):
    task, good, split, bad_lines, line, message = CASES[case]
    plan, bad_file = plan_for(tmp_path, task, good, split, bad_lines)
    with pytest.raises(UserError) as info:
        plan.task.load_data(plan)
    text = str(info.value)
    assert text.startswith(f"{bad_file}:{line}: ") and message in text and "data.on_error" in text, text

    plan, _ = plan_for(tmp_path, task, good, split, bad_lines, on_error="skip")
    data = plan.task.load_data(plan)
    assert data.skipped_rows == 1
    assert len(data.train) + len(data.eval) == len(good) + len(bad_lines) - 1


@pytest.mark.parametrize("row, message", [("x,pos,extra", "more fields than the header's 2"),
                                          ("only-one-field", "fewer fields than the header's 2")])
def test_csv_rows_with_the_wrong_number_of_fields(tmp_path, row, message):
    good = ["text,label", "a fine film,pos", "a dull film,neg"]
    plan, bad_file = plan_for(tmp_path, "classification", [], "train", [*good, row], suffix=".csv")
    (tmp_path / "eval.csv").write_text("\n".join(good) + "\n")
    with pytest.raises(UserError, match=rf"train\.csv:4: {message}"):
        plan.task.load_data(plan)
    plan, _ = plan_for(tmp_path, "classification", [], "train", [*good, row], suffix=".csv", on_error="skip")
    (tmp_path / "eval.csv").write_text("\n".join(good) + "\n")
    assert plan.task.load_data(plan).skipped_rows == 1


def test_a_csv_row_after_quoted_newlines_is_named_by_its_first_line(tmp_path):
    good = ["text,label", '"a fine film,\nin two lines",pos', "a dull film,neg"]
    plan, bad_file = plan_for(tmp_path, "classification", [], "train", [*good, ' ,pos', '"blank\r\n\nlines",neg'],
                              suffix=".csv")
    (tmp_path / "eval.csv").write_text("\n".join(good) + "\n")
    with pytest.raises(UserError, match=r"train\.csv:5: column 'text' is missing or empty"):
        plan.task.load_data(plan)
    assert [r["_where"].rsplit(":", 1)[1] for r in read_file(bad_file)] == ["2", "4", "5", "6"]


def test_a_broken_conll_line_names_its_line(tmp_path):
    good = ["John B-person", "ran O", "", "in O", "Paris B-loc", ""]
    plan, bad_file = plan_for(tmp_path, "ner", [], "train", [*good, "Rome", "is O"], suffix=".conll")
    (tmp_path / "eval.conll").write_text("\n".join(good) + "\n")
    with pytest.raises(UserError, match=r"train\.conll:7: expected 'token<TAB>tag', got 'Rome'"):
        plan.task.load_data(plan)
    plan, _ = plan_for(tmp_path, "ner", [], "train", [*good, "Rome", "is O"], suffix=".conll", on_error="skip")
    (tmp_path / "eval.conll").write_text("\n".join(good) + "\n")
    data = plan.task.load_data(plan)
    assert data.skipped_rows == 1 and len(data.train) == 2  # the whole broken sentence goes


def test_skipped_rows_reach_run_json_and_the_log(tmp_path, tiny_bert_dir, caplog):
    long_text = " ".join(["word"] * 200)
    train = [*lines(CLS), "{broken", json.dumps({"text": "", "label": "pos"}),
             json.dumps({"text": long_text, "label": "neg"})]
    (tmp_path / "train.jsonl").write_text("\n".join(train) + "\n")
    (tmp_path / "eval.jsonl").write_text("\n".join([*lines(CLS[:2]), json.dumps({"text": "x", "label": "meh"})]) + "\n")
    recipe = recipe_from_dict({
        "model": {"name": tiny_bert_dir}, "method": {"name": "lora"}, "task": {"name": "classification",
                                                                               "max_length": 32},
        "data": {"train": str(tmp_path / "train.jsonl"), "eval": str(tmp_path / "eval.jsonl"), "on_error": "skip"},
        "train": {"max_steps": 2, "batch_size": 4}, "hardware": {"precision": "fp32"}}, source=str(tmp_path / "r.toml"))
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        result = api.run(recipe, output=tmp_path / "run")
    assert json.loads((result.run_dir / "run.json").read_text())["skipped_rows"] == 3
    assert "skipped 2 malformed train rows" in caplog.text and "skipped 1 malformed eval rows" in caplog.text
    assert "1 of 9 examples reach task.max_length = 32 tokens" in caplog.text  # truncated, not skipped


def test_truncation_is_said_once_across_ranks(monkeypatch, caplog):
    """Every rank of a torchrun launch tokenizes the same rows: rank 0 alone says how many were cut."""
    from datasets import Dataset

    from adapterkit.tasks.rows import warn_truncated

    rows = Dataset.from_dict({"input_ids": [[1] * 32, [1] * 3]})
    for rank, said in (("0", True), ("1", False)):
        monkeypatch.setenv("RANK", rank)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="adapterkit"):
            warn_truncated(rows, 32)
        assert ("1 of 2 examples reach task.max_length = 32" in caplog.text) == said, rank


def test_chat_max_length_too_short_for_any_assistant_turn_is_a_user_error(tmp_path, tiny_llama_dir):
    """A max_length that truncates every conversation before its answer leaves nothing to learn from: a
    one-line error naming task.max_length, not trl's StopIteration from an empty dataloader."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from adapterkit.tasks.chat import TASK

    plan, _ = plan_for(tmp_path, "chat", CHAT, "eval", lines(CHAT), max_length=4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    conversations = Dataset.from_dict({"messages": [r["messages"] for r in CHAT]})
    with pytest.raises(UserError, match=r"task.max_length = 4 cuts every train conversation"):
        TASK.tokenized(conversations, tokenizer, plan.task_options, "train", plan.where)
    assert len(TASK.tokenized(conversations, tokenizer, plan.task_options.model_copy(update={"max_length": 256}),
                              "train", plan.where)) == 4
