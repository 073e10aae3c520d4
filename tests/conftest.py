"""Shared fixtures: tiny models built from configs, saved with save_pretrained and loaded back through
adapterkit's real loader; small real data files taken from the packaged datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _tensorboard_outside_the_checkout(tmp_path_factory):
    """A Trainer that evaluates before it ever trains (tests that build one directly, e.g. the method contract's
    loss before training) has TensorBoard write into ./runs of the working directory: the checkout. adapterkit's
    own trainers point it at RUN_DIR/logs (``tracking.track``) or drop it (``tracking.untrack``)."""
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(tmp_path_factory.mktemp("tensorboard")))


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    from adapterkit.assets import resolve_model

    return resolve_model("builtin:minilm-l6")


@pytest.fixture(scope="session")
def smollm_dir() -> str:
    from adapterkit.assets import resolve_model

    return resolve_model("builtin:smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> str:
    """A 2-layer, 32-wide BERT with the packaged MiniLM tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)  # the same weights whichever tests ran before (as tiny_llama_dir)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm_dir) -> str:
    """A 2-layer, 32-wide Llama with the packaged SmolLM2 tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_where"}) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def data_files(tmp_path_factory) -> dict[str, Path]:
    """Small train/eval JSONL files cut from the packaged datasets, one pair per task."""
    from adapterkit.data.builtin import BUILTIN_DATASETS

    folder = tmp_path_factory.mktemp("data")
    files = {}
    for task, name, n_train, n_eval in [("classification", "rotten-tomatoes", 64, 32), ("ner", "wnut16", 48, 24),
                                        ("chat", "chatterbot", 32, 8)]:
        rows = BUILTIN_DATASETS[name].rows()
        files[f"{task}_train"] = _write_jsonl(folder / f"{task}_train.jsonl", rows[:n_train])
        files[f"{task}_eval"] = _write_jsonl(folder / f"{task}_eval.jsonl", rows[n_train:n_train + n_eval])
    return files


def tiny_recipe(task: str, method_name: str, model_dir: str, files: dict[str, Path], **sections) -> dict:
    """A recipe dict for a few fast steps; ``sections`` merge into the recipe's sections."""
    recipe = {
        "name": f"{task}_{method_name}",
        "model": {"name": model_dir},
        "method": {"name": method_name},
        "task": {"name": task, "max_length": 48},
        "data": {"train": str(files[f"{task}_train"]), "eval": str(files[f"{task}_eval"])},
        "train": {"max_steps": 6, "batch_size": 8, "seed": 0, "logging_steps": 1},
        "hardware": {"profile": "auto", "precision": "fp32"},
    }
    if task == "chat":
        recipe["task"].update({"num_samples": 1, "max_new_tokens": 4})
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return recipe


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with a hash of its bytes (folders as 'dir'): proves a folder untouched."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def one_step_recipe(tmp_path, tiny_bert_dir, data_files) -> Path:
    """A classification LoRA recipe file on the tiny BERT that trains one step."""
    import tomli_w

    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(tiny_recipe("classification", "lora", tiny_bert_dir, data_files,
                                              train={"max_steps": 1})))
    return path


@pytest.fixture
def cpu_kind(monkeypatch):
    """Pins the kind of CPU the planner sees (``hardware.precision.cpu_kind``; some constants are per kind and CI's
    CPUs vary) to the AMD EPYC's, where its constants were fitted; call the fixture's value to pin another."""
    import importlib

    from adapterkit.hardware.precision import KIND_FLAGS

    detect = importlib.import_module("adapterkit.hardware.detect")  # the package's ``detect`` is the function

    def pin(kind: str) -> None:
        monkeypatch.setattr(detect, "cpu_flags", lambda: set(KIND_FLAGS[kind]))

    pin("cpu-avx512-bf16")
    return pin
