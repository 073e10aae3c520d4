"""Method options checked against the model's shape before any weight loads (``Method.check_shape``): values that
peft would silently change, or that the model cannot honour, are one-line refusals naming the recipe field."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tomli_w
from conftest import tiny_recipe

from adapterkit.errors import UserError
from adapterkit.plan import load_recipe
from adapterkit.preflight import preflight


def _recipe(tmp_path, tiny_bert_dir, data_files, method: dict):
    path = tmp_path / "recipe.toml"
    recipe = tiny_recipe("classification", method["name"], tiny_bert_dir, data_files)
    recipe["method"] = method
    path.write_text(tomli_w.dumps(recipe))
    return path


@pytest.mark.parametrize("method, expected", [
    ({"name": "freeze", "top_layers": 3}, "method.top_layers = 3, but the model has 2 blocks"),
    ({"name": "oft", "block_size": 24}, "method.block_size = 24 does not divide the in_features 32, 64"),
])
def test_options_the_model_cannot_take_are_refused_in_preflight(tmp_path, tiny_bert_dir, data_files, method, expected):
    path = _recipe(tmp_path, tiny_bert_dir, data_files, method)
    with pytest.raises(UserError) as refused:
        preflight(load_recipe(path))
    assert expected in str(refused.value) and str(refused.value).startswith(str(path))


@pytest.mark.parametrize("method", [{"name": "freeze", "top_layers": 2}, {"name": "oft", "block_size": 16}])
def test_options_that_fit_pass(tmp_path, tiny_bert_dir, data_files, method):
    preflight(load_recipe(_recipe(tmp_path, tiny_bert_dir, data_files, method)))


def test_the_oft_refusal_suggests_a_block_size_that_fits(tmp_path, tiny_bert_dir, data_files):
    path = _recipe(tmp_path, tiny_bert_dir, data_files, {"name": "oft", "block_size": 24})
    with pytest.raises(UserError, match=r"e\.g\. 16, which divides them all"):
        preflight(load_recipe(path))


def test_adapterkit_run_prints_one_line_and_exits_2_writing_nothing(tmp_path, tiny_bert_dir, data_files):
    path = _recipe(tmp_path, tiny_bert_dir, data_files, {"name": "freeze", "top_layers": 9})
    done = subprocess.run([sys.executable, "-m", "adapterkit", "run", str(path), "--output", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "method.top_layers = 9" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_wrap_refuses_more_top_layers_than_blocks(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification

    import adapterkit

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    with pytest.raises(UserError, match="top_layers = 3, but the model has 2 blocks"):
        adapterkit.wrap(model, "freeze", top_layers=3)
    assert all(p.requires_grad for p in model.parameters())  # refused before it touched the model
