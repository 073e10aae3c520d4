"""Helpers of the architecture matrix: tiny checkpoints built once per architecture from
``adapterkit.support.TINY``, a few rows of data per task, and a reload through plain peft/transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapterkit.support import TINY, tiny_config

CELL_DATA = {"classification": ("rotten-tomatoes", 8, 4), "ner": ("wnut16", 8, 4), "chat": ("chatterbot", 4, 2),
             "seq2seq": ("chatterbot", 4, 2)}
AUTO_CLASSES = {"classification": "AutoModelForSequenceClassification", "ner": "AutoModelForTokenClassification",
                "chat": "AutoModelForCausalLM", "seq2seq": "AutoModelForSeq2SeqLM"}
_BUILT: dict[str, str] = {}


def tiny_model_dir(arch: str, tmp_path_factory) -> str:
    """The architecture's tiny checkpoint + tokenizer, saved once per session."""
    if arch not in _BUILT:
        import torch
        import transformers
        from transformers import AutoTokenizer

        from adapterkit.assets import resolve_model

        row = TINY[arch]
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(row.tokenizer))
        config = tiny_config(arch, vocab_size=len(tokenizer))
        folder = tmp_path_factory.mktemp(f"tiny-{arch}")
        torch.manual_seed(0)
        getattr(transformers, row.save_as).from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        _BUILT[arch] = str(folder)
    return _BUILT[arch]


@pytest.fixture(scope="session")
def matrix_files(tmp_path_factory) -> dict[str, Path]:
    from adapterkit.data.builtin import BUILTIN_DATASETS

    folder = tmp_path_factory.mktemp("matrix-data")
    files = {}
    for task, (name, n_train, n_eval) in CELL_DATA.items():
        every = BUILTIN_DATASETS[name].rows()
        step = len(every) // (n_train + n_eval)  # spread over the file: sorted datasets give every label
        rows = [{k: v for k, v in r.items() if k != "_where"} for r in every[::step]]
        if task == "seq2seq":  # a dialogue's first question and answer as source and target
            rows = [{"source": r["messages"][0]["content"], "target": r["messages"][1]["content"]} for r in rows]
        for split, part in (("train", rows[:n_train]), ("eval", rows[n_train:n_train + n_eval])):
            path = folder / f"{task}_{split}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in part))
            files[f"{task}_{split}"] = path
    return files


def plain_reload(result, task: str, tokenizer):
    """The run's artifact loaded by a user with only transformers (+ peft for an adapter): (model, batch).

    Returns (None, batch) when the artifact is neither a peft adapter nor a model folder."""
    import transformers

    folder = result.artifact_dir
    auto = getattr(transformers, AUTO_CLASSES[task])
    kwargs = {}
    if (folder / "labels.json").is_file():
        labels = json.loads((folder / "labels.json").read_text())["id2label"]
        kwargs = {"num_labels": len(labels)}
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        base_dir = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
        base = auto.from_pretrained(base_dir, **kwargs)
        base.config.pad_token_id = tokenizer.pad_token_id  # as the README's interop notes tell users to
        model = PeftModel.from_pretrained(base, folder)
    elif (folder / "config.json").is_file():
        model = auto.from_pretrained(folder)
    else:
        model = None
    batch = tokenizer(["a quiet, moving film", "Paris is lovely in spring and the food is great"],
                      padding=True, return_tensors="pt")
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    if task == "seq2seq":  # the decoder reads the targets so far: here the inputs themselves
        batch["decoder_input_ids"] = batch["input_ids"]
    return model, batch
