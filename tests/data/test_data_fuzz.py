"""Data files, generated: other encodings and byte-order marks, ragged and duplicated CSV columns, giant rows,
truncated JSON lines, bad rows up to whole splits under ``data.on_error = "skip"``. Each either loads (and
tokenizes) or ends in one ``UserError`` line naming the data file or the recipe, never another exception.

The generated cases run the data path (read, check, tokenize) in-process; a few end-to-end cases run
``adapterkit.cli.main`` with ``train.max_steps = 1`` on the tiny models from conftest.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import tomli_w
from conftest import tiny_recipe
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapterkit.cli import main
from adapterkit.errors import UserError
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict

TEXTS = ["a fine film", "café au lait", "naïve “smart” quotes", "10 € only", "plain words", "Zürich, again"]
LABELS = ["pos", "neg", "neu"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"]
DECODED = {"utf-8", "utf-8-sig", "utf-16"}  # read as they are; the others are refused unless plain ASCII
MAX_LENGTH = {"classification": 32, "ner": 32, "chat": 96}  # chat: room for the template's system prompt


def good_rows(task: str, n: int) -> list[dict]:
    if task == "classification":
        return [{"text": TEXTS[i % len(TEXTS)], "label": LABELS[i % 2]} for i in range(n)]
    if task == "ner":
        return [{"tokens": ["in", TEXTS[i % len(TEXTS)].split()[0]], "tags": ["O", "B-loc" if i % 2 else "B-per"]}
                for i in range(n)]
    return [{"messages": [{"role": "user", "content": TEXTS[i % len(TEXTS)]},
                          {"role": "assistant", "content": TEXTS[(i + 1) % len(TEXTS)]}]} for i in range(n)]


def bad_row(task: str) -> dict:
    return {"classification": {"text": " ", "label": "pos"}, "ner": {"tokens": ["a"], "tags": ["PER"]},
            "chat": {"messages": [{"role": "user", "content": "hi"}]}}[task]


def giant_row(task: str) -> dict:
    words = ["giant"] * 300_000  # ~1.8 MB of text in one row
    if task == "classification":
        return {"text": " ".join(words), "label": "neg"}
    if task == "ner":
        return {"tokens": words, "tags": ["O"] * (len(words) - 1) + ["B-loc"]}
    return {"messages": [{"role": "user", "content": " ".join(words)}, {"role": "assistant", "content": "ok"}]}


def as_csv(rows: list[dict], header: list[str]) -> list[str]:
    quote = lambda v: '"' + str(v).replace('"', '""') + '"'  # noqa: E731
    return [",".join(header), *(",".join(quote(r.get(h, "")) for h in header) for r in rows)]


@st.composite
def data_files(draw) -> tuple[str, str, list[str], str, str]:
    """(task, suffix, the mutated split's lines, its encoding, on_error)."""
    task = draw(st.sampled_from(["classification", "ner", "chat"]))
    suffix = ".csv" if task == "classification" and draw(st.booleans()) else ".jsonl"
    rows = good_rows(task, draw(st.integers(4, 10)))
    n_bad = draw(st.sampled_from([0, 0, 1, 2, len(rows) + 1]))  # the last: more than skipping may drop
    rows = [*rows, *[bad_row(task)] * n_bad]
    if draw(st.integers(0, 5)) == 0:
        rows.insert(draw(st.integers(0, len(rows))), giant_row(task))
        event("giant row")
    rows = draw(st.permutations(rows))
    if suffix == ".csv":
        header = draw(st.sampled_from([["text", "label"], ["label", "text"], ["text", "label", "text"],
                                       ["text", "label", "note"]]))
        lines = as_csv(rows, header)
    else:
        lines = [json.dumps(r, ensure_ascii=draw(st.booleans())) for r in rows]
    for damage in draw(st.lists(st.sampled_from(["truncate", "ragged", "blank", "garbage", "u2028"]), max_size=2)):
        at = draw(st.integers(1 if suffix == ".csv" else 0, len(lines) - 1))
        event(damage)
        if damage == "truncate":
            lines[at] = lines[at][: draw(st.integers(0, max(0, len(lines[at]) - 1)))]
        elif damage == "ragged":
            lines[at] = lines[at] + draw(st.sampled_from([",extra", ',"a,b",c', ""]))
            if suffix == ".csv" and draw(st.booleans()):
                lines[at] = lines[at].split(",")[0]
        elif damage == "blank":
            lines.insert(at, draw(st.sampled_from(["", "   ", "\r"])))
        elif damage == "garbage":
            lines.insert(at, draw(st.text(max_size=20)).replace("\n", " "))
        else:
            lines[at] = lines[at].replace(" ", "\u2028", 1)
    encoding = draw(st.sampled_from(ENCODINGS))
    event(f"encoding {encoding}")
    return task, suffix, lines, encoding, draw(st.sampled_from(["skip", "fail"]))


def write(path: Path, lines: list[str], encoding: str, crlf: bool = False) -> None:
    text = ("\r\n" if crlf else "\n").join(lines) + "\n"
    path.write_bytes(text.encode(encoding, errors="replace"))


@pytest.fixture(scope="module")
def tokenizers(tiny_bert_dir, tiny_llama_dir):
    from transformers import AutoTokenizer

    return {"bert": AutoTokenizer.from_pretrained(tiny_bert_dir),
            "llama": AutoTokenizer.from_pretrained(tiny_llama_dir)}


def load_and_tokenize(plan, tokenizers) -> None:
    from adapterkit.tasks.chat.task import renderable

    data, task = plan.task.load_data(plan), plan.task.name
    if task == "chat":
        for split, table in (("train", data.train), ("eval", data.eval)):
            table, _ = renderable(table, tokenizers["llama"], plan.recipe.data.on_error, split)
            assert len(plan.task.tokenized(table, tokenizers["llama"], plan.task_options, split, plan.where))
    else:
        for table in (data.train, data.eval):
            longest = max(map(len, plan.task.tokenize(table, tokenizers["bert"], MAX_LENGTH[task])["input_ids"]))
            assert longest <= MAX_LENGTH[task]


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(case=data_files(), which=st.sampled_from(["train", "eval"]), crlf=st.booleans())
def test_data_files_load_or_fail_with_one_line(tmp_path_factory, tokenizers, case, which, crlf):
    task, suffix, lines, encoding, on_error = case
    folder = tmp_path_factory.mktemp("fuzz")
    files = {split: folder / f"{split}{suffix}" for split in ("train", "eval")}
    header = ["text", "label"] if suffix == ".csv" else None
    good = good_rows(task, 6)
    write(files["train" if which == "eval" else "eval"], as_csv(good, header) if header else
          [json.dumps(r) for r in good], "utf-8")
    write(files[which], lines, encoding, crlf)
    recipe = recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"},
                               "task": {"name": task, "max_length": MAX_LENGTH[task]},
                               "data": {"train": str(files["train"]), "eval": str(files["eval"]),
                                        "on_error": on_error}},
                              source=str(folder / "r.toml"))
    try:
        load_and_tokenize(make_plan(recipe), tokenizers)
    except UserError as err:
        message = str(err)
        event(f"UserError: {message.split(': ', 1)[1][:28]}")
        assert "\n" not in message and "Traceback" not in message, message
        assert message.startswith((str(files[which]), str(folder / "r.toml"))), message
        return
    event("loaded")
    raw = files[which].read_bytes()
    if encoding not in DECODED and not raw.isascii():
        pytest.fail(f"a {encoding} file with non-ASCII bytes loaded without a word")


# -- end to end through the CLI ----------------------------------------------------------------------------

def run_cli(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    return code, err.getvalue()


def write_recipe(folder: Path, recipe: dict) -> str:
    path = folder / "r.toml"
    path.write_text(tomli_w.dumps(recipe))
    return str(path)


def test_cli_excel_csv_trains_and_eval_data_in_latin1_is_one_line(tmp_path, tiny_bert_dir):
    rows = good_rows("classification", 12)
    write(tmp_path / "train.csv", [*as_csv(rows, ["text", "label"]), '" ",pos'], "utf-8-sig", crlf=True)
    write(tmp_path / "eval.csv", as_csv(rows[:6], ["text", "label"]), "utf-8-sig")
    files = {"classification_train": tmp_path / "train.csv", "classification_eval": tmp_path / "eval.csv"}
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, files, train={"max_steps": 1},
                         data={"on_error": "skip"})
    code, err = run_cli(["run", write_recipe(tmp_path, recipe), "--output", str(tmp_path / "run")])
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "run.json").read_text())["skipped_rows"] == 1

    write(tmp_path / "latin1.csv", as_csv(rows, ["text", "label"]), "latin-1")
    code, err = run_cli(["eval", str(tmp_path / "run"), "--data", str(tmp_path / "latin1.csv")])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"adapterkit: error: {tmp_path / 'latin1.csv'}:3: not UTF-8") and "iconv" in err, err


def test_cli_greeting_first_chat_trains(tmp_path, tiny_llama_dir):
    greeting = {"role": "assistant", "content": "Hello, how can I help?"}
    rows = [{"messages": [greeting, *r["messages"]]} for r in good_rows("chat", 8)]
    write(tmp_path / "train.jsonl", [json.dumps(r) for r in rows], "utf-8")
    files = {"chat_train": tmp_path / "train.jsonl", "chat_eval": tmp_path / "train.jsonl"}
    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, files, train={"max_steps": 1})
    code, err = run_cli(["run", write_recipe(tmp_path, recipe), "--output", str(tmp_path / "run")])
    assert code == 0, err


def test_cli_skipping_a_whole_split_is_one_line(tmp_path, tiny_bert_dir):
    rows = good_rows("ner", 6)
    write(tmp_path / "train.jsonl", [json.dumps(r) for r in rows], "utf-8")
    write(tmp_path / "eval.jsonl", [json.dumps(bad_row("ner"))] * 3, "utf-8")
    files = {"ner_train": tmp_path / "train.jsonl", "ner_eval": tmp_path / "eval.jsonl"}
    recipe = tiny_recipe("ner", "lora", tiny_bert_dir, files, train={"max_steps": 1}, data={"on_error": "skip"})
    code, err = run_cli(["run", write_recipe(tmp_path, recipe), "--output", str(tmp_path / "run")])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"adapterkit: error: {tmp_path / 'eval.jsonl'}:1: 3 of 3 eval rows are bad"), err
