"""Data sources: file formats, built-in datasets, splits, and bad rows reported with file and line."""

from __future__ import annotations

import json

import pytest

from adapterkit.data.builtin import BUILTIN_DATASETS
from adapterkit.data.files import read_file
from adapterkit.data.sources import load_train_eval, split_rows
from adapterkit.errors import UserError
from adapterkit.recipe import DataSection


def test_builtin_datasets_have_the_documented_size_and_columns():
    tomatoes = BUILTIN_DATASETS["rotten-tomatoes"].rows()
    assert len(tomatoes) == 12752 and {r["label"] for r in tomatoes} == {"fresh", "rotten"}
    wnut = BUILTIN_DATASETS["wnut16"].rows()
    assert len(wnut) == 2394
    assert len({t[2:] for r in wnut for t in r["tags"] if t != "O"}) == 10
    chats = BUILTIN_DATASETS["chatterbot"].rows()
    assert chats and all(m["role"] in ("user", "assistant") for c in chats for m in c["messages"])
    assert all(c["messages"][-1]["role"] == "assistant" for c in chats)


def test_split_is_deterministic_and_disjoint():
    rows = [{"i": i} for i in range(100)]
    a_train, a_eval = split_rows(rows, 0.2, seed=0)
    b_train, b_eval = split_rows(rows, 0.2, seed=0)
    assert a_eval == b_eval and len(a_eval) == 20 and len(a_train) == 80
    assert not {r["i"] for r in a_train} & {r["i"] for r in a_eval}
    assert split_rows(rows, 0.2, seed=1)[1] != a_eval


def test_the_shipped_chat_split_holds_out_conversations_train_never_sees():
    from adapterkit.data.sources import row_key, shared_rows

    chats = BUILTIN_DATASETS["chatterbot"].rows()  # tech_support.yml repeats some conversations 100+ times
    train, evaluation = split_rows(chats, 0.1, seed=0)
    assert not shared_rows(train, evaluation)
    assert len({row_key(r) for r in evaluation}) == len(evaluation) == round(len(chats) * 0.1)


def test_limits_sample_reproducibly():
    data = DataSection(train="builtin:rotten-tomatoes", eval=0.1, limit_train=50, limit_eval=20)
    train, evaluation = load_train_eval(data, "r.toml")
    again = load_train_eval(data, "r.toml")
    assert len(train) == 50 and len(evaluation) == 20 and train == again[0]


def test_formats_keep_line_numbers(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x", "label": "a"}\n\n{"text": "y", "label": "b"}\n')
    rows = read_file(tmp_path / "a.jsonl")
    assert [r["_where"].rsplit(":", 1)[1] for r in rows] == ["1", "3"]
    (tmp_path / "a.csv").write_text('text,label\n"multi\nline",a\nz,b\n')
    rows = read_file(tmp_path / "a.csv")
    assert rows[0]["text"] == "multi\nline" and rows[1]["_where"].endswith(":4")
    (tmp_path / "a.conll").write_text("-DOCSTART- O\n\nJohn B-person\nran O\n\nParis\tB-geo-loc\n")
    rows = read_file(tmp_path / "a.conll")
    assert rows[0]["tokens"] == ["John", "ran"] and rows[1]["tags"] == ["B-geo-loc"]
    assert rows[1]["_where"].endswith(":6")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["p"], "label": ["a"]}), tmp_path / "a.parquet")
    assert read_file(tmp_path / "a.parquet")[0]["text"] == "p"


def test_broken_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "x", "label": "a"}\n{"text": "y", \n')
    with pytest.raises(UserError, match=r"bad\.jsonl:2: not valid JSON"):
        read_file(path)


def test_missing_data_file_names_the_key(tmp_path):
    data = DataSection(train=str(tmp_path / "missing.jsonl"))
    with pytest.raises(UserError, match=r"r\.toml: data\.train: data file .*missing\.jsonl.* not found"):
        load_train_eval(data, "r.toml")


def test_relative_paths_resolve_against_the_recipe(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "t.jsonl").write_text(json.dumps({"text": "x", "label": "a"}) + "\n")
    data = DataSection(train="d/t.jsonl", eval="d/t.jsonl")
    train, evaluation = load_train_eval(data, str(tmp_path / "recipe.toml"))
    assert train[0]["text"] == "x" and evaluation[0]["label"] == "a"
