"""``data.streaming = true``: the train split read as an ``IterableDataset`` gives the same first batches as
the in-memory path at the same seed (a stream that fits in the shuffle buffer comes in the sampler's order);
a longer stream is shuffled through the buffer, reproducibly; a run needs ``train.max_steps``; the in-memory
path's tokens are cached by fingerprint, so a second run (``compare``'s next job) does not tokenize again."""

from __future__ import annotations

import pytest
from conftest import tiny_recipe

from adapterkit.errors import UserError
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict


def plan_for(tmp_path, model_dir, data_files, **data):
    recipe = tiny_recipe("chat", "lora", model_dir, data_files, train={"max_steps": 6, "batch_size": 4, "seed": 3},
                         data=data)
    return make_plan(recipe_from_dict(recipe, source=str(tmp_path / "r.toml")))


def first_batches(plan, tmp_path, model_dir, n=3):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    data = plan.task.load_data(plan)
    trainer = plan.task.build_trainer(plan, model, tokenizer, data, tmp_path / "run")
    batches = []
    for batch in trainer.get_train_dataloader():
        batches.append({k: v.tolist() if hasattr(v, "tolist") else v for k, v in batch.items()})
        if len(batches) == n:
            return batches
    return batches


def test_streaming_gives_the_in_memory_paths_first_batches(tmp_path, tiny_llama_dir, data_files):
    memory = first_batches(plan_for(tmp_path, tiny_llama_dir, data_files), tmp_path, tiny_llama_dir)
    streamed = first_batches(plan_for(tmp_path, tiny_llama_dir, data_files, streaming=True), tmp_path,
                             tiny_llama_dir)
    assert len(memory) == 3 and streamed == memory
    other_seed = plan_for(tmp_path, tiny_llama_dir, data_files, streaming=True)
    other_seed = make_plan(other_seed.recipe.model_copy(update={"train": other_seed.recipe.train.model_copy(
        update={"seed": 4})}))
    assert first_batches(other_seed, tmp_path, tiny_llama_dir) != memory


def test_a_stream_longer_than_the_buffer_is_shuffled_reproducibly(tmp_path, tiny_llama_dir, data_files):
    def ids(plan):
        return [row for batch in first_batches(plan, tmp_path, tiny_llama_dir) for row in batch["input_ids"]]

    small = plan_for(tmp_path, tiny_llama_dir, data_files, streaming=True, shuffle_buffer=4)
    again = ids(small)
    assert ids(small) == again and ids(plan_for(tmp_path, tiny_llama_dir, data_files, streaming=True)) != again
    in_file_order = ids(plan_for(tmp_path, tiny_llama_dir, data_files, streaming=True, shuffle_buffer=1))
    assert again != in_file_order


def test_streaming_needs_max_steps_and_the_chat_task(tmp_path, tiny_llama_dir, tiny_bert_dir, data_files):
    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, data_files, train={"max_steps": -1, "epochs": 1},
                         data={"streaming": True})
    plan = make_plan(recipe_from_dict(recipe, source=str(tmp_path / "r.toml")))
    with pytest.raises(UserError, match="data.streaming = true needs train.max_steps"):
        plan.task.load_data(plan)
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files, data={"streaming": True})
    plan = make_plan(recipe_from_dict(recipe, source=str(tmp_path / "r.toml")))
    with pytest.raises(UserError, match="data.streaming = true is read by task 'chat'"):
        plan.task.load_data(plan)


def test_tokens_are_cached_by_fingerprint(tmp_path, tiny_llama_dir, data_files, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("ADAPTERKIT_CACHE", str(tmp_path / "cache"))
    plan = plan_for(tmp_path, tiny_llama_dir, data_files)
    task, opts = plan.task, plan.task_options

    def tokens():
        data = task.load_data(plan)  # fresh rows and tokenizer, as a new process would have
        return task.tokenized(data.train, AutoTokenizer.from_pretrained(tiny_llama_dir), opts, "train", plan.where)

    first = tokens()
    files = sorted((tmp_path / "cache" / "tokenized").glob("*.arrow"))
    assert files and first.cache_files
    from adapterkit.tasks.chat import task as chat_task

    def refuse(*args, **kwargs):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(chat_task, "encode", refuse)
    assert tokens()["input_ids"] == first["input_ids"]
    changed = make_plan(plan.recipe.model_copy(update={"task": plan.recipe.task.model_copy(
        update={"max_length": 40})}))
    with pytest.raises(AssertionError, match="tokenized again"):  # another option, another fingerprint
        changed.task.tokenized(changed.task.load_data(changed).train, AutoTokenizer.from_pretrained(tiny_llama_dir),
                               changed.task_options, "train", changed.where)


def streamed_rows(tmp_path, suffix: str, train: str, evaluation: str, on_error: str):
    """The train stream of a chat recipe over train/eval files with this suffix, read whole."""
    for name, text in (("train", train), ("eval", evaluation)):
        (tmp_path / f"{name}{suffix}").write_text(text)
    recipe = recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"}, "task": {"name": "chat"},
                               "data": {"train": str(tmp_path / f"train{suffix}"), "eval": str(tmp_path / f"eval{suffix}"),
                                        "streaming": True, "on_error": on_error}, "train": {"max_steps": 2}},
                              source=str(tmp_path / "r.toml"))
    plan = make_plan(recipe)
    return list(plan.task.load_data(plan).train)


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_a_bad_jsonl_line_in_a_stream_is_named_by_file_and_line_or_skipped(tmp_path, on_error):
    good = '{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}'
    train = "\n".join([good] * 5 + ['{"conversations": [}'] + [good] * 5) + "\n"
    if on_error == "fail":
        with pytest.raises(UserError, match=rf"^{tmp_path / 'train.jsonl'}:6: not valid JSON"):
            streamed_rows(tmp_path, ".jsonl", train, good + "\n", on_error)
    else:
        rows = streamed_rows(tmp_path, ".jsonl", train, good + "\n", on_error)
        assert len(rows) == 10 and rows[5]["_where"] == f"{tmp_path / 'train.jsonl'}:7"


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_a_bad_csv_record_in_a_stream_is_named_by_file_and_line_or_skipped(tmp_path, on_error):
    """A streamed CSV is read as the whole-file reader reads it (strings, a record named by its first line): a record
    with an extra field stopped the run with pandas' ParserError traceback, with or without on_error = "skip"."""
    train = "\n".join(["instruction,output", *["hi,yo"] * 3, "hi,yo,extra", '"two\nlines",yo', "hi,yo"]) + "\n"
    evaluation = "instruction,output\nhi,yo\n"
    if on_error == "fail":
        with pytest.raises(UserError, match=rf"^{tmp_path / 'train.csv'}:5: more fields than the header's 2"):
            streamed_rows(tmp_path, ".csv", train, evaluation, on_error)
    else:
        rows = streamed_rows(tmp_path, ".csv", train, evaluation, on_error)
        assert [r["_where"] for r in rows] == [f"{tmp_path / 'train.csv'}:{n}" for n in (2, 3, 4, 6, 8)]
        assert rows[3]["messages"][0]["content"] == "two\nlines"
