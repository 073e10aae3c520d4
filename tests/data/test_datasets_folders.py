"""``datasets`` folders written by ``save_to_disk`` (one split or several) read by absolute, ``./`` and
relative path (to the working directory, else to the recipe's folder), with ``:<split>`` picking a split."""

from __future__ import annotations

import pytest

from adapterkit.data.sources import check_sources, load_train_eval
from adapterkit.errors import UserError
from adapterkit.recipe import DataSection

ROWS = {"text": ["good", "bad", "fine", "awful", "great", "poor"], "label": ["pos", "neg"] * 3}


@pytest.fixture
def folders(tmp_path):
    from datasets import Dataset, DatasetDict

    data = tmp_path / "project" / "data"
    whole = Dataset.from_dict(ROWS)
    whole.save_to_disk(str(data / "single"))
    DatasetDict({"train": whole, "test": whole.select([0, 1])}).save_to_disk(str(data / "splits"))
    return tmp_path


def texts(rows):
    return [r["text"] for r in rows]


@pytest.mark.parametrize("form", ["absolute", "dot", "relative-to-cwd", "relative-to-recipe"])
def test_a_saved_dataset_dict_by_each_path_form(folders, monkeypatch, form):
    project = folders / "project"
    spec, cwd = {"absolute": (str(project / "data" / "splits"), folders),
                 "dot": ("./data/splits", project),
                 "relative-to-cwd": ("data/splits", project),
                 "relative-to-recipe": ("data/splits", folders)}[form]
    monkeypatch.chdir(cwd)
    data = DataSection(train=spec, eval=f"{spec}:test")
    recipe = str(project / "r.toml")
    check_sources(data, recipe)
    train, evaluation = load_train_eval(data, recipe)
    assert texts(train) == ROWS["text"] and texts(evaluation) == ["good", "bad"]
    assert train[0]["_where"].endswith("splits[train]#0")
    _, default_eval = load_train_eval(DataSection(train=spec, eval=spec), recipe)  # no validation: test
    assert texts(default_eval) == ["good", "bad"]


def test_a_single_split_folder_and_a_split_by_name(folders):
    single = folders / "project" / "data" / "single"
    train, evaluation = load_train_eval(DataSection(train=str(single), eval=0.5), "r.toml")
    assert sorted(texts(train + evaluation)) == sorted(ROWS["text"])
    with pytest.raises(UserError, match=r"has no split 'dev' \(splits: train, test\)"):
        load_train_eval(DataSection(train=f"{folders / 'project/data/splits'}:dev"), "r.toml")
    with pytest.raises(UserError, match="data file or folder '/nowhere/ds' not found"):
        check_sources(DataSection(train="/nowhere/ds"), "r.toml")


def test_a_classification_run_reads_a_saved_folder(folders, tmp_path):
    from adapterkit.plan import make_plan
    from adapterkit.recipe import recipe_from_dict

    splits = folders / "project" / "data" / "splits"
    plan = make_plan(recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"},
                                       "task": {"name": "classification"},
                                       "data": {"train": f"{splits}:train", "eval": f"{splits}:test"}},
                                      source=str(tmp_path / "r.toml")))
    data = plan.task.load_data(plan)
    assert len(data.train) == 6 and len(data.eval) == 2 and data.labels == ["neg", "pos"]


def test_a_saved_folder_streams_by_split(folders):
    from datasets import IterableDataset

    from adapterkit.data.streaming import open_stream

    stream = open_stream(f"{folders / 'project/data/splits'}:test", recipe_source="r.toml", key="data.train",
                         split="train")
    rows = list(stream)
    assert isinstance(stream, IterableDataset) and [r["text"] for r in rows] == ["good", "bad"]
    assert rows[1]["_where"].endswith("splits[test]#row2")
