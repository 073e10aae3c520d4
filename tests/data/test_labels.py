"""Labels as users store them: ``ClassLabel`` columns of ``datasets`` folders (whose integers mean whatever the
folder's own name list says), label values with stray whitespace or case variants, integer labels and labels
written as floats. Each is read as the class it names, or refused in one line; never silently re-mapped."""

from __future__ import annotations

import json

import pytest

from adapterkit.errors import UserError
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict


def plan_of(tmp_path, task: str, train: str, evaluation: str, **task_options):
    recipe = recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"},
                               "task": {"name": task, **task_options}, "data": {"train": train, "eval": evaluation}},
                              source=str(tmp_path / "r.toml"))
    return make_plan(recipe)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_classlabel_folders_with_different_name_orders_keep_each_rows_class(tmp_path):
    from datasets import ClassLabel, Dataset, Features, Value

    def folder(name, names, texts, labels):
        features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
        Dataset.from_dict({"text": texts, "label": labels}, features=features).save_to_disk(str(tmp_path / name))
        return str(tmp_path / name)

    train = folder("train", ["neg", "pos"], ["good", "great", "bad", "awful"], [1, 1, 0, 0])
    evaluation = folder("eval", ["pos", "neg"], ["good", "bad"], [0, 1])  # the same classes, listed the other way
    plan = plan_of(tmp_path, "classification", train, evaluation)
    data = plan.task.load_data(plan)
    assert data.labels == ["neg", "pos"]  # names, not "0"/"1"
    by_text = {t: data.labels[i] for t, i in zip(data.eval["text"], data.eval["label"])}
    assert by_text == {"good": "pos", "bad": "neg"}


def test_ner_tags_stored_as_classlabels_read_as_their_names(tmp_path):
    from datasets import ClassLabel, Dataset, Features, List, Value

    features = Features({"tokens": List(Value("string")), "tags": List(ClassLabel(names=["O", "B-PER", "I-PER"]))})
    Dataset.from_dict({"tokens": [["John", "Smith", "ran"]] * 3, "tags": [[1, 2, 0]] * 3},
                      features=features).save_to_disk(str(tmp_path / "ner"))
    plan = plan_of(tmp_path, "ner", str(tmp_path / "ner"), str(tmp_path / "ner"))
    data = plan.task.load_data(plan)
    assert [data.labels[i] for i in data.train["tags"][0]] == ["B-PER", "I-PER", "O"]


def test_label_whitespace_and_whole_number_floats_name_one_class(tmp_path):
    import pandas as pd

    train = tmp_path / "train.csv"  # "fine, 1": the space after the comma is part of the field
    train.write_text("text,label\nfine,1\nbad,0\nok, 1\nmeh,0 \ngood,1\n")
    pd.DataFrame({"text": ["fine", "bad"], "label": [1.0, 0.0]}).to_parquet(tmp_path / "eval.parquet")  # pandas' floats
    plan = plan_of(tmp_path, "classification", str(train), str(tmp_path / "eval.parquet"))
    data = plan.task.load_data(plan)
    assert data.labels == ["0", "1"]
    assert data.train["label"] == [1, 0, 1, 0, 1] and data.eval["label"] == [1, 0]


def test_a_blank_label_is_a_missing_one(tmp_path):
    rows = [{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}, {"text": "c", "label": "  "}]
    plan = plan_of(tmp_path, "classification", write_jsonl(tmp_path / "t.jsonl", rows * 2),
                   write_jsonl(tmp_path / "e.jsonl", rows[:2]))
    with pytest.raises(UserError, match=r"t\.jsonl:3: column 'label' is missing"):
        plan.task.load_data(plan)


def test_labels_differing_only_in_case_are_refused_unless_task_labels_names_them(tmp_path):
    rows = [{"text": f"good {i}", "label": "pos"} for i in range(3)] + [{"text": f"bad {i}", "label": "neg"}
                                                                        for i in range(3)]
    train = write_jsonl(tmp_path / "t.jsonl", [*rows, {"text": "Nice", "label": "Pos"}])
    evaluation = write_jsonl(tmp_path / "e.jsonl", rows)
    plan = plan_of(tmp_path, "classification", train, evaluation)
    with pytest.raises(UserError) as info:
        plan.task.load_data(plan)
    message = str(info.value)
    assert message.startswith(f"{train}:7: labels 'pos' ({train}:1) and 'Pos' differ only in case") and "\n" not in message
    plan = plan_of(tmp_path, "classification", train, evaluation, labels=["neg", "pos", "Pos"])
    assert plan.task.load_data(plan).labels == ["neg", "pos", "Pos"]


def test_a_list_of_labels_is_a_bad_row_not_a_class(tmp_path):
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}, {"text": "c", "label": ["x", "y"]}]
    plan = plan_of(tmp_path, "classification", write_jsonl(tmp_path / "t.jsonl", rows * 2),
                   write_jsonl(tmp_path / "e.jsonl", rows[:2]))
    with pytest.raises(UserError, match=r"t\.jsonl:3: column 'label' holds a list, not one label"):
        plan.task.load_data(plan)


def test_numeric_labels_are_numbered_in_numeric_order(tmp_path):
    """Star ratings 1-10 as integers: class ids follow the numbers ("2" before "10", not text order); text labels,
    and a mix of numbers and text, keep text order."""
    from adapterkit.tasks.labels import ordered

    rows = [{"text": f"review {n}", "label": n} for n in (10, 2, 1, 9, 3, 5, 4, 6, 7, 8)] * 2
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    plan = plan_of(tmp_path, "classification", train, train)
    data = plan.task.load_data(plan)
    assert data.labels == [str(n) for n in range(1, 11)]
    assert {t: data.labels[i] for t, i in zip(data.train["text"], data.train["label"])}["review 10"] == "10"
    assert ordered(["-1", "0.5", "0", "1"]) == ["-1", "0", "0.5", "1"]
    assert ordered(["pos", "neg", "10", "2"]) == ["10", "2", "neg", "pos"]
