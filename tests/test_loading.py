"""Offline and safe loading: a shipped recipe runs with no network at all; pickle weights are refused unless
``model.allow_pickle``; a model's own code never runs unless ``model.trust_remote_code``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
import torch
from conftest import REPO, tiny_recipe

from adapterkit import loading
from adapterkit.cli import main
from adapterkit.errors import UserError
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict


@pytest.fixture(scope="module")
def pickle_bert_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """The tiny BERT with its weights as a pickle ``pytorch_model.bin`` and no safetensors."""
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("pickle-bert")
    for name in os.listdir(tiny_bert_dir):
        if not name.endswith(".safetensors"):
            shutil.copy(Path(tiny_bert_dir) / name, folder / name)
    torch.save(BertModel.from_pretrained(tiny_bert_dir).state_dict(), folder / "pytorch_model.bin")
    return folder


def test_pickle_weights_are_refused_before_anything_is_written(pickle_bert_dir, data_files, tmp_path, capsys):
    path = tmp_path / "r.toml"
    path.write_text(tomli_w.dumps(tiny_recipe("classification", "lora", str(pickle_bert_dir), data_files)))
    assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"adapterkit: error: {path}: model.allow_pickle: ") and "\n" not in err, err
    assert "set model.allow_pickle = true" in err
    assert not (tmp_path / "out").exists()


def test_pickle_weights_load_when_allowed(pickle_bert_dir, data_files):
    def plan_for(allow: bool):
        return make_plan(recipe_from_dict(tiny_recipe("classification", "lora", str(pickle_bert_dir), data_files,
                                                      model={"allow_pickle": allow})))

    tokenizer = loading.load_tokenizer(plan_for(True).recipe.model, "r.toml")
    kwargs = {"num_labels": 2}
    with pytest.raises(UserError, match="model.allow_pickle: .*only pickle"):  # the loader's own refusal too
        loading.load_model(plan_for(False), tokenizer, kwargs)
    plan = plan_for(True)
    loading.load_config(plan.recipe.model, plan.where)
    model = loading.load_model(plan, tokenizer, kwargs)
    expected = torch.load(pickle_bert_dir / "pytorch_model.bin", weights_only=True)
    name = "embeddings.word_embeddings.weight"
    assert torch.equal(model.base_model.state_dict()[name], expected[name])


def test_remote_code_never_runs_unless_trusted(tiny_bert_dir, tmp_path):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_bert_dir, folder)
    marker = tmp_path / "code-ran"
    (folder / "configuration_custom.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertConfig\n\nclass CustomConfig(BertConfig):\n    model_type = 'custom-bert'\n")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="custom-bert", auto_map={"AutoConfig": "configuration_custom.CustomConfig"})
    (folder / "config.json").write_text(json.dumps(config))
    section = recipe_from_dict({"model": {"name": str(folder)}, "method": {"name": "lora"},
                                "task": {"name": "classification"}, "data": {"train": "builtin:rotten-tomatoes"}}).model
    assert loading._common_kwargs(section)["trust_remote_code"] is False
    with pytest.raises(UserError, match="model.trust_remote_code: model .* needs its own code to run"):
        loading.load_config(section, "r.toml")
    assert not marker.exists()


def test_a_shipped_recipe_runs_with_no_network(tmp_path):
    """Inside a network namespace with no interfaces (root: ``unshare -n``), and without HF_HUB_OFFLINE."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.strip()}")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    out = tmp_path / "run"
    done = subprocess.run(
        ["unshare", "-n", "--", sys.executable, "-m", "adapterkit", "run", "recipes/sentiment_lora.toml",
         "--set", "train.max_steps=2", "--set", "train.batch_size=4", "--set", "data.limit_train=16",
         "--set", "data.limit_eval=8", "--output", str(out)],
        cwd=REPO, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["steps"] == 2
    assert "eval_macro_f1" in json.loads((out / "metrics.json").read_text())


def test_model_dropout_sets_every_dropout_of_the_config(tiny_bert_dir, data_files):
    """``model.dropout`` reaches the loaded model: every dropout probability of the config, and the modules."""
    def load(**model):
        plan = make_plan(recipe_from_dict(tiny_recipe("classification", "lora", tiny_bert_dir, data_files,
                                                      model=model)))
        tokenizer = loading.load_tokenizer(plan.recipe.model, plan.where)
        return loading.load_model(plan, tokenizer, {"num_labels": 2})

    kept, zero = load(), load(dropout=0.0)
    assert kept.config.hidden_dropout_prob > 0 and kept.config.attention_probs_dropout_prob > 0
    assert zero.config.hidden_dropout_prob == 0.0 and zero.config.attention_probs_dropout_prob == 0.0
    assert {m.p for m in zero.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    assert any(m.p > 0 for m in kept.modules() if isinstance(m, torch.nn.Dropout))


def test_only_a_missing_head_report_is_held_back(tiny_bert_dir, data_files, tmp_path):
    """Training and reopening alike drop transformers' "MISSING ... newly initialized" report on the task head
    alone (a run trains it, a reopened run's artifact restores it); a base whose checkpoint has other findings
    (here the unexpected weights of the pre-training heads) keeps the whole report."""
    import logging

    from transformers import BertForPreTraining

    pretraining_dir = tmp_path / "pretraining-bert"
    BertForPreTraining.from_pretrained(tiny_bert_dir).save_pretrained(pretraining_dir)
    for name in os.listdir(tiny_bert_dir):
        if not name.endswith((".safetensors", "config.json")):
            shutil.copy(Path(tiny_bert_dir) / name, pretraining_dir / name)

    class Caught(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())

    def report(model_dir: str, training: bool) -> str:
        plan = make_plan(recipe_from_dict(tiny_recipe("classification", "lora", model_dir, data_files)))
        said.clear()
        loading.load_model(plan, loading.load_tokenizer(plan.recipe.model, plan.where), {"num_labels": 2},
                           training=training)
        return "\n".join(said)

    said: list[str] = []
    handler, logger = Caught(level=logging.WARNING), logging.getLogger("transformers.modeling_utils")
    logger.addHandler(handler)
    try:
        assert "LOAD REPORT" not in report(tiny_bert_dir, training=False)
        assert "LOAD REPORT" not in report(tiny_bert_dir, training=True)  # the run says what it trains
        other = report(str(pretraining_dir), training=False)
        assert "LOAD REPORT" in other and "UNEXPECTED" in other and "classifier.weight" in other
    finally:
        logger.removeHandler(handler)
