"""Realistic data files that used to end in a traceback or in silent nonsense (issue #18): other encodings,
Excel's BOM, greeting-first conversations, labels outside ``task.labels``, splits emptied by skipping,
NER data without entities, duplicated CSV columns and giant rows. Each ends in one ``UserError`` line naming
the file and line (or key), or simply works."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from adapterkit.data.files import read_file
from adapterkit.errors import UserError

try:
    from adapterkit.tasks.rows import MAX_SKIPPED_SHARE
except ImportError:  # TEMP
    MAX_SKIPPED_SHARE = None
from conftest import REPO
from test_bad_data import CHAT, CLS, NER, lines, plan_for


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


# -- 3: encodings ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_latin1_file_names_file_line_and_how_to_convert(tmp_path, suffix):
    text = "\n".join(["text,label", "a fine film,pos", "un café noir,neg"] if suffix == ".csv" else
                     [*lines(CLS[:2]), json.dumps({"text": "un café noir", "label": "neg"}, ensure_ascii=False)])
    (tmp_path / f"train{suffix}").write_bytes(text.encode("latin-1"))
    with pytest.raises(UserError) as info:
        read_file(tmp_path / f"train{suffix}")
    message = one_line(info)
    assert message.startswith(f"{tmp_path / f'train{suffix}'}:3: not UTF-8"), message
    assert "offset" in message and "iconv -f latin1 -t utf-8" in message


def test_excel_csv_utf8_with_a_bom_just_works(tmp_path):
    plan, path = plan_for(tmp_path, "classification", [], "train", [], suffix=".csv")
    csv_text = "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in CLS)
    path.write_bytes(csv_text.encode("utf-8-sig"))  # Excel's "CSV UTF-8": a BOM, then the header
    (tmp_path / "eval.csv").write_bytes(csv_text.encode("utf-8-sig"))
    data = plan.task.load_data(plan)
    assert len(data.train) == len(CLS) and data.train["text"][0] == "a fine film"


def test_utf16_with_a_bom_is_decoded_without_one_refused(tmp_path):
    text = "text,label\na fine film,pos\nun café noir,neg\n"
    (tmp_path / "a.csv").write_bytes(text.encode("utf-16"))  # with its BOM, as Excel's "Unicode text"
    assert [r["text"] for r in read_file(tmp_path / "a.csv")] == ["a fine film", "un café noir"]
    (tmp_path / "b.csv").write_bytes(text.encode("utf-16-le"))  # no BOM: ASCII becomes text with NULs
    with pytest.raises(UserError, match=r"b\.csv:1: .*UTF-16.*iconv -f utf-16le -t utf-8") as info:
        read_file(tmp_path / "b.csv")
    one_line(info)


# -- 5: greeting-first conversations ---------------------------------------------------------------------

GREETING_FIRST = {"messages": [{"role": "assistant", "content": "Hi! How can I help?"},
                               {"role": "user", "content": "my order is late"},
                               {"role": "assistant", "content": "Sorry, let me check."}]}


def test_a_conversation_opening_with_the_assistant_trains_on_its_answers(tmp_path, tiny_llama_dir):
    from transformers import AutoTokenizer

    from adapterkit.tasks.chat.template import encode

    plan, _ = plan_for(tmp_path, "chat", [*CHAT, GREETING_FIRST], "eval", lines(CHAT))
    data = plan.task.load_data(plan)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokens = plan.task.tokenized(data.train, tokenizer, plan.task_options, "train", plan.where)
    assert len(tokens) == len(CHAT) + 1
    enc = encode(tokenizer, GREETING_FIRST["messages"])
    learned = tokenizer.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m])
    assert "Sorry, let me check." in learned and "How can I help" not in learned  # the opener is context


def test_a_conversation_the_template_refuses_is_a_bad_row(tmp_path, tiny_llama_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.chat_template = ("{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('Conversation roles "
                               "must alternate user/assistant') }}{% endif %}" + tokenizer.chat_template)
    plan, path = plan_for(tmp_path, "chat", [*CHAT, GREETING_FIRST] * 2, "eval", lines(CHAT))
    data = plan.task.load_data(plan)
    with pytest.raises(UserError) as info:
        plan.task.build_trainer(plan, None, tokenizer, data, tmp_path / "run")
    train_file = path.with_name("train.jsonl")
    assert one_line(info).startswith(f"{train_file}:5: the chat template cannot render this conversation"), info.value
    assert "must alternate" in str(info.value) and "data.on_error" in str(info.value)

    from adapterkit.tasks.chat.task import renderable

    plan, _ = plan_for(tmp_path, "chat", [*CHAT, GREETING_FIRST] * 2, "eval", lines(CHAT), on_error="skip")
    data = plan.task.load_data(plan)
    train, skipped = renderable(data.train, tokenizer, "skip", "train")
    assert skipped == 2 and len(train) == 2 * len(CHAT)


# -- 6: labels outside task.labels ------------------------------------------------------------------------

def test_a_train_label_missing_from_task_labels_is_named(tmp_path):
    plan, path = plan_for(tmp_path, "classification", CLS, "train", lines(CLS), labels=["pos", "neu"])
    with pytest.raises(UserError) as info:
        plan.task.load_data(plan)
    assert one_line(info).startswith(f"{path}:2: label 'neg' is not in task.labels"), info.value


def test_an_eval_label_missing_from_task_labels_says_so(tmp_path):
    bad = [*lines(CLS[:2]), json.dumps({"text": "so-so", "label": "meh"})]
    plan, path = plan_for(tmp_path, "classification", CLS, "eval", bad, labels=["pos", "neg"])
    with pytest.raises(UserError) as info:
        plan.task.load_data(plan)
    assert one_line(info).startswith(f"{path}:3: label 'meh' is not in task.labels"), info.value
    assert "seen in train" not in str(info.value)


# -- 7: skipping too much ---------------------------------------------------------------------------------

@pytest.mark.parametrize("task, good, bad_row", [
    ("classification", CLS, {"text": "", "label": "pos"}),
    ("ner", NER, {"tokens": ["a"], "tags": ["PER"]}),
    ("chat", CHAT, {"messages": [{"role": "user", "content": "hi"}]}),
])
def test_skipping_every_eval_row_is_one_line(tmp_path, task, good, bad_row):
    plan, path = plan_for(tmp_path, task, good, "eval", lines([bad_row] * 3), on_error="skip")
    with pytest.raises(UserError) as info:
        plan.task.load_data(plan)
    message = one_line(info)
    assert message.startswith(f"{path}:1: ") and "3 of 3 eval rows" in message and "data.on_error" in message


def test_skipping_more_than_the_documented_share_is_refused(tmp_path):
    assert MAX_SKIPPED_SHARE == 0.5
    bad = [json.dumps({"text": "", "label": "pos"})] * 5
    plan, path = plan_for(tmp_path, "classification", CLS, "train", [*lines(CLS[:4]), *bad], on_error="skip")
    with pytest.raises(UserError) as info:
        plan.task.load_data(plan)
    message = one_line(info)
    assert message.startswith(f"{path}:5: ") and "5 of 9 train rows" in message and "data.on_error" in message


def test_skipping_every_row_of_a_class_is_refused(tmp_path):
    rows = [*lines(CLS), *[json.dumps({"text": " ", "label": "neu"})] * 2]
    plan, path = plan_for(tmp_path, "classification", CLS, "train", rows, on_error="skip")
    with pytest.raises(UserError) as info:
        plan.task.load_data(plan)
    message = one_line(info)
    assert message.startswith(f"{path}:9: ") and "'neu'" in message and "data.on_error" in message


def test_unknown_entity_types_point_at_task_entity_types_first(tmp_path):
    conll = ["EU B-ORG", "rejects O", "German B-MISC", "call O", "", "Peter B-PER", "Blackburn I-PER", "",
             "BRUSSELS B-LOC", "1996-08-22 O", "", "The O", "European B-ORG", "", "Germany B-LOC", "'s O", ""]
    plan, path = plan_for(tmp_path, "ner", [], "train", conll, suffix=".conll", entity_types=["PER"])
    (tmp_path / "eval.conll").write_text("\n".join(conll) + "\n")
    with pytest.raises(UserError) as info:
        plan.task.load_data(plan)
    message = one_line(info)
    assert message.startswith(f"{path}:1: tag 'B-ORG' is not in task.entity_types"), message
    assert message.index("task.entity_types") < message.index("data.on_error")
    plan, _ = plan_for(tmp_path, "ner", [], "train", conll, suffix=".conll", entity_types=["PER"], on_error="skip")
    (tmp_path / "eval.conll").write_text("\n".join(conll) + "\n")
    with pytest.raises(UserError, match=r"4 of 5 train rows .*data\.on_error"):
        plan.task.load_data(plan)


# -- 11: nothing to learn, duplicated columns --------------------------------------------------------------

def test_ner_train_data_with_only_o_tags_is_refused(tmp_path):
    only_o = [{"tokens": ["John", "ran"], "tags": ["O", "O"]}] * 4
    plan, path = plan_for(tmp_path, "ner", only_o, "eval", lines(NER))
    with pytest.raises(UserError) as info:
        plan.task.load_data(plan)
    message = one_line(info)
    assert str(path.with_name("train.jsonl")) in message and "only 'O' tags" in message, message


def test_a_duplicated_csv_column_is_refused(tmp_path):
    (tmp_path / "a.csv").write_text("text,label,text\na fine film,pos,other\n")
    with pytest.raises(UserError) as info:
        read_file(tmp_path / "a.csv")
    assert one_line(info) == f"{tmp_path / 'a.csv'}:1: column 'text' appears twice in the header"


# -- 12: a giant row ---------------------------------------------------------------------------------------

GIANT = """
import json, resource, sys
from pathlib import Path
from transformers import AutoTokenizer
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict
folder, model = Path(sys.argv[1]), sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(model)
recipe = recipe_from_dict({"model": {"name": "unused"}, "method": {"name": "lora"},
                           "task": {"name": sys.argv[3], "max_length": 64},
                           "data": {"train": str(folder / "train.jsonl"), "eval": str(folder / "train.jsonl")}})
plan = make_plan(recipe)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = plan.task.load_data(plan)
tokens = plan.task.tokenize(data.train, tokenizer, 64)
print(json.dumps({"grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
                  "longest": max(len(ids) for ids in tokens["input_ids"])}))
"""


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_a_giant_row_is_cut_before_it_is_tokenized(tmp_path, tiny_bert_dir, task):
    words = ("lorem ipsum dolor sit amet " * 300_000).split()  # ~8 MB of text in one row
    giant = ({"text": " ".join(words), "label": "pos"} if task == "classification" else
             {"tokens": words, "tags": ["O"] * (len(words) - 1) + ["B-loc"]})
    good = CLS if task == "classification" else NER
    (tmp_path / "train.jsonl").write_text("\n".join([*lines(good), json.dumps(giant)]) + "\n")
    done = subprocess.run([sys.executable, "-c", GIANT, str(tmp_path), tiny_bert_dir, task], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["longest"] == 64 and result["grew_mb"] < 150, result


def test_a_giant_chat_message_is_cut_before_it_is_tokenized(tmp_path):
    giant = {"messages": [{"role": "user", "content": "hi " * 3_000_000},
                          {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]}
    plan, _ = plan_for(tmp_path, "chat", [*CHAT, giant], "eval", lines(CHAT), max_length=64)
    data = plan.task.load_data(plan)
    chars = [sum(len(m["content"]) for m in row["messages"]) for row in data.train]
    assert max(chars) <= 64 * 32
