"""Eval rows that are also train rows are counted in the log (an eval file cut from the train file would otherwise
report memorised answers as held-out quality); a fraction split holds repeated rows out whole, sharing none."""

from __future__ import annotations

import json
import logging

from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict

ROWS = [{"text": f"review {i}", "label": ["neg", "pos"][i % 2]} for i in range(10)]


def load(tmp_path, train_rows, evaluation):
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    if isinstance(evaluation, list):
        (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evaluation))
        evaluation = str(tmp_path / "eval.jsonl")
    recipe = recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"}, "task": {"name": "classification"},
                               "data": {"train": str(tmp_path / "train.jsonl"), "eval": evaluation}},
                              source=str(tmp_path / "r.toml"))
    plan = make_plan(recipe)
    return plan.task.load_data(plan)


def test_eval_rows_also_in_train_are_counted(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        load(tmp_path, ROWS, ROWS[:3] + [{"text": "unseen", "label": "pos"}])
    assert f"3 of 4 eval rows are also train rows (the first: {tmp_path / 'eval.jsonl'}:1)" in caplog.text


def test_a_fraction_split_of_repeated_rows_shares_none(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="adapterkit"):
        data = load(tmp_path, ROWS * 3, 0.2)  # every row three times
    assert "also train rows" not in caplog.text and "20 rows repeat others" in caplog.text
    held_out = set(data.eval["text"])
    assert len(held_out) == len(data.eval) == 6  # 20% of 30 rows: six distinct reviews, once each
    assert not held_out & set(data.train["text"]) and len(data.train) == 30 - 3 * 6


def test_disjoint_splits_say_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        load(tmp_path, ROWS, 0.2)
    assert "also train rows" not in caplog.text
