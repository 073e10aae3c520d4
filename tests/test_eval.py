"""``adapterkit eval`` and the zero-shot row go through the evaluate-only shell (a trainer with no train
split): re-evaluating a finished run reproduces its metrics.json."""

from __future__ import annotations

import json
import tomllib

import pytest
import tomli_w
from conftest import tiny_recipe

from adapterkit.cli import main


@pytest.mark.parametrize("task, model", [("classification", "tiny_bert_dir"), ("ner", "tiny_bert_dir"),
                                         ("chat", "tiny_llama_dir")])
def test_eval_of_a_finished_run_reproduces_its_metrics(task, model, request, data_files, tmp_path, capsys):
    path = tmp_path / "r.toml"
    path.write_text(tomli_w.dumps(tiny_recipe(task, "lora", request.getfixturevalue(model), data_files,
                                              train={"max_steps": 2})))
    out = tmp_path / "run"
    assert main(["run", str(path), "--output", str(out)]) == 0
    saved = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    again = json.loads(capsys.readouterr().out)
    state = ("runtime", "per_second", "epoch", "tokens_seen")  # the trainer's state, not the model's quality
    numbers = {k: v for k, v in saved.items() if isinstance(v, (int, float)) and not any(s in k for s in state)}
    assert numbers and set(numbers) <= set(again)
    for key, value in numbers.items():
        assert again[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_eval_refuses_train_data_whose_labels_changed_since_the_run(tiny_bert_dir, tmp_path, capsys):
    """The labels come from the recipe's train data as it is when re-read: after an edit that keeps their number,
    the model's class 0 would silently be read as the new data's first label."""
    def write(labels):
        rows = [{"text": f"{label} text {i}", "label": label} for i in range(3) for label in labels]
        for split in ("train", "eval"):
            (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    write(["a", "b", "c"])
    files = {"classification_train": tmp_path / "train.jsonl", "classification_eval": tmp_path / "eval.jsonl"}
    path = tmp_path / "r.toml"
    path.write_text(tomli_w.dumps(tiny_recipe("classification", "lora", tiny_bert_dir, files, train={"max_steps": 1})))
    out = tmp_path / "run"
    assert main(["run", str(path), "--output", str(out)]) == 0
    write(["b", "c", "d"])
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "trained with the labels a, b, c, but its data.train now gives b, c, d" in err and "\n" not in err, err


def test_eval_of_a_run_that_numbered_its_classes_in_another_order_reads_them_as_trained(tiny_bert_dir, tmp_path,
                                                                                         capsys):
    """Numeric labels used to be numbered in text order ("1", "10", "2"); now they are numbered as numbers. A run
    trained the old way (here: task.labels in text order, then dropped from its recipe) is evaluated with the order
    its labels.json records, not re-read in the new order: the same metrics as when it was trained."""
    rows = [{"text": f"{label} text {i}", "label": label} for i in range(4) for label in (1, 10, 2)]
    for split in ("train", "eval"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = {"classification_train": tmp_path / "train.jsonl", "classification_eval": tmp_path / "eval.jsonl"}
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, files, train={"max_steps": 3, "learning_rate": 5e-3})
    recipe["task"]["labels"] = ["1", "10", "2"]
    path = tmp_path / "r.toml"
    path.write_text(tomli_w.dumps(recipe))
    out = tmp_path / "run"
    assert main(["run", str(path), "--output", str(out)]) == 0
    saved = json.loads((out / "metrics.json").read_text())
    saved_recipe = tomllib.loads((out / "recipe.toml").read_text())
    assert saved_recipe["task"].pop("labels") == ["1", "10", "2"]
    (out / "recipe.toml").write_text(tomli_w.dumps(saved_recipe))
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    again = json.loads(capsys.readouterr().out)
    for key in ("eval_loss", "eval_accuracy", "eval_macro_f1"):
        assert again[key] == pytest.approx(saved[key], rel=1e-5, abs=1e-6), key
