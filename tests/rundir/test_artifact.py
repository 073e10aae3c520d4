"""A finished run's trained artifact is checked against the files its method says its ``save`` writes
(``Method.saved_files``) before any weight loads, in every command that reads the run: a plugin's own layout
as much as the built-ins'."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import tomli_w
from conftest import tiny_recipe

from adapterkit import api
from adapterkit.cli import main
from adapterkit.methods import METHODS, Method, SavedFiles
from adapterkit.methods.full import FullOptions

PLUGIN = "savedfiles-test"
FILES = SavedFiles(config="toy_config.json", weights="toy.safetensors", what="the toy adapter's configuration")
# serve probes its port first: {port} is a free one (a fixed port may be held by another test session)
COMMANDS = [["eval"], ["generate", "--prompt", "hi"], ["chat"], ["serve", "--port", "{port}"], ["export", "--format", "merged"]]


def _free_port() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _load(base_model, folder):
    raise AssertionError(f"weights loaded from {folder}")  # a damaged artifact must be refused before this


@pytest.fixture
def plugin():
    """A third-party method, registered as its entry point would, that declares its own saved files."""
    record = Method(name=PLUGIN, trains="a toy", options=FullOptions, default_learning_rate=1e-3,
                    wrap=lambda model, options, ctx: model, save=lambda model, folder: None, load=_load,
                    saved_files=FILES)
    METHODS.register(record)
    yield record
    METHODS._load().pop(PLUGIN)


@pytest.fixture
def plugin_run(plugin, tmp_path, tiny_bert_dir, data_files) -> Path:
    """A finished run's folder as the plugin's ``save`` leaves it, with the tokenizer beside its files."""
    import numpy as np
    from safetensors.numpy import save_file
    from transformers import AutoTokenizer

    run = tmp_path / "run"
    folder = run / "adapter"
    folder.mkdir(parents=True)
    (run / "recipe.toml").write_text(tomli_w.dumps(tiny_recipe("classification", PLUGIN, tiny_bert_dir, data_files)))
    (run / "run.json").write_text(json.dumps({"method": PLUGIN, "artifact": "adapter"}))
    (folder / FILES.config).write_text(json.dumps({"scale": 1.0}))
    save_file({"scale": np.ones(4, dtype=np.float32)}, str(folder / FILES.weights))
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(folder)
    return run


def test_every_built_in_method_declares_its_saved_files():
    from adapterkit.methods import bottleneck, full, peft_tuner

    assert {m.name: m.saved_files for m in METHODS if m.saved_files is None} == {}
    assert METHODS.get("bottleneck").saved_files == SavedFiles(bottleneck.CONFIG, bottleneck.WEIGHTS,
                                                               "the bottleneck adapters' configuration")
    assert METHODS.get("lora").saved_files is peft_tuner.PEFT_FILES
    assert METHODS.get("freeze").saved_files is full.MODEL_FILES


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
@pytest.mark.parametrize("damage, expected", [
    (lambda run: (run / "adapter" / FILES.config).unlink(),
     f"adapter/{FILES.config}: missing (the toy adapter's configuration); rerun the recipe with --output"),
    (lambda run: (run / "adapter" / FILES.weights).unlink(),
     f"adapter/{FILES.weights}: missing (the run's trained weights)"),
    (lambda run: (run / "adapter" / FILES.config).write_text('{"scale": 1.'),
     f"adapter/{FILES.config}: truncated or corrupt (JSONDecodeError"),
    (lambda run: [os.remove(run / "adapter" / name) for name in (FILES.config, FILES.weights)],
     f"adapter: holds none of the run's trained weights (expected {FILES.config} + {FILES.weights})"),
], ids=["missing-config", "missing-weights", "corrupt-config", "no-files"])
def test_a_plugins_damaged_artifact_is_named_before_any_weight_loads(plugin_run, command, damage, expected, capsys):
    damage(plugin_run)
    assert main([command[0], str(plugin_run), *(a.format(port=_free_port()) for a in command[1:])]) == 2
    out, err = capsys.readouterr()
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("adapterkit: error:")]
    assert len(lines) == 1 and "Traceback" not in err and expected in lines[0], (out, err)


def test_a_plugins_whole_artifact_passes_the_check(plugin_run):
    """Nothing over-refused: the run reaches the plugin's own ``load``."""
    with pytest.raises(AssertionError, match="weights loaded from"):
        api.reopen(plugin_run)
