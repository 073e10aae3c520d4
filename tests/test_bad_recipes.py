"""Malformed recipes, generated: every one ends in a one-line ``adapterkit: error: FILE: KEY: ...`` with exit
code 2, no traceback, and nothing written, before any model weights are loaded.

Each case is a valid tiny recipe with one thing broken: a wrong type, an unknown key, an out-of-range value,
a missing key, broken TOML, a missing file, an unknown method/task/profile/dataset, or a combination the
planner rejects. Runs ``adapterkit.cli.main`` in-process (fast), plus a few through a real subprocess.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import tomli_w
from conftest import REPO, tiny_recipe
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapterkit.cli import main

SECTIONS = ("model", "method", "task", "data", "train", "hardware")
LETTERS = "abcdefghijklmnopqrstuvwxyz"

# Values no lax coercion turns into the field's type (true/false is no number either: #18).
word = st.text(LETTERS, min_size=1, max_size=8).map(lambda s: "x" + s)
tables = st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), min_size=1, max_size=2)
arrays = st.lists(st.integers(-3, 3), min_size=1, max_size=3)
not_a_number = st.one_of(word, arrays, tables, st.booleans())
not_an_int = st.one_of(not_a_number, st.floats(-100, 100).filter(lambda f: f != int(f)))
not_a_bool = st.one_of(word, arrays, tables, st.integers(2, 100), st.floats(0.01, 0.99))
not_a_string = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), arrays, tables)

WRONG_TYPE = {
    "model.name": not_a_string, "model.revision": not_a_string, "model.trust_remote_code": not_a_bool,
    "model.allow_pickle": not_a_bool, "method.name": not_a_string, "method.r": not_an_int,
    "method.alpha": not_a_number, "method.dropout": not_a_number, "method.use_dora": not_a_bool,
    "method.target_modules": st.one_of(st.integers(), tables, st.lists(st.integers(), min_size=1, max_size=2)),
    "method.bias": not_a_string, "task.name": not_a_string, "task.max_length": not_an_int,
    "task.text_column": not_a_string, "task.labels": st.one_of(st.integers(), tables),
    "data.train": not_a_string, "data.eval": st.one_of(arrays, tables), "data.limit_train": not_an_int,
    "data.split_seed": not_an_int, "data.on_error": not_a_string, "train.max_steps": not_an_int,
    "train.epochs": not_a_number, "train.learning_rate": not_a_number, "train.batch_size": not_an_int,
    "train.grad_accum": not_an_int, "train.seed": not_an_int, "train.warmup_ratio": not_a_number,
    "train.weight_decay": not_a_number, "train.lr_scheduler": not_a_string, "train.max_grad_norm": not_a_number,
    "train.logging_steps": not_an_int, "train.save_every": not_an_int, "hardware.profile": not_a_string,
    "hardware.precision": not_a_string, "hardware.gradient_checkpointing": not_a_bool,
}
negative_or_zero = st.integers(-1000, 0)
OUT_OF_RANGE = {
    "method.r": st.one_of(negative_or_zero, st.integers(4097, 10**6)),
    "method.alpha": st.floats(-100, 0), "method.dropout": st.one_of(st.floats(-5, -0.001), st.floats(1, 5)),
    "task.max_length": st.one_of(negative_or_zero, st.integers(129, 100_000)),  # tiny BERT has 128 positions
    "data.eval": st.one_of(st.floats(-5, 0), st.floats(1, 50)), "data.limit_train": negative_or_zero,
    "data.limit_eval": negative_or_zero,
    "train.max_steps": st.one_of(st.integers(-1000, -2), st.integers(10**8 + 1, 10**18), st.just(1e23)),
    "train.epochs": st.one_of(st.floats(-10, 0), st.floats(1e6 + 1, 1e30)),
    "train.learning_rate": st.one_of(st.floats(-1, 0), st.floats(10, 1e9)),
    "train.batch_size": st.one_of(negative_or_zero, st.integers(2**20 + 1, 10**12)),
    "train.eval_batch_size": negative_or_zero,
    "train.grad_accum": negative_or_zero, "train.warmup_ratio": st.one_of(st.floats(-1, -1e-6), st.floats(1, 9)),
    "train.weight_decay": st.floats(-10, -1e-6), "train.max_grad_norm": st.floats(-10, 0),
    "train.logging_steps": negative_or_zero, "train.save_every": negative_or_zero,
}
CHOICES = {"data.on_error": {"fail", "skip"}, "hardware.precision": {"auto", "fp32", "bf16", "fp16"},
           "train.lr_scheduler": {"linear", "cosine", "constant", "constant_with_warmup"},
           "method.bias": {"none", "all", "lora_only"}}
REQUIRED = ["model", "method", "task", "data", "model.name", "method.name", "task.name", "data.train"]


def put(recipe: dict, key: str, value) -> dict:
    section, _, name = key.partition(".")
    recipe[section][name] = value
    return recipe


@st.composite
def cases(draw, base: dict) -> tuple[str, str, list[str]]:
    """(recipe TOML, what the error must name, extra CLI args) for one malformed recipe."""
    recipe, args = copy.deepcopy(base), []
    kind = draw(st.sampled_from(["type", "range", "choice", "unknown_key", "missing", "toml", "file",
                                 "name", "combination", "override", "section_type"]))
    event(kind)
    if kind == "type":
        key = draw(st.sampled_from(sorted(WRONG_TYPE)))
        return tomli_w.dumps(put(recipe, key, draw(WRONG_TYPE[key]))), key, args
    if kind == "range":
        key = draw(st.sampled_from(sorted(OUT_OF_RANGE)))
        return tomli_w.dumps(put(recipe, key, draw(OUT_OF_RANGE[key]))), key, args
    if kind == "choice":
        key = draw(st.sampled_from(sorted(CHOICES)))
        return tomli_w.dumps(put(recipe, key, draw(word.filter(lambda w: w not in CHOICES[key])))), key, args
    if kind == "unknown_key":
        section = draw(st.sampled_from(["", *SECTIONS]))
        name = draw(st.text(LETTERS + "_", min_size=1, max_size=12).map(lambda s: "zz" + s))
        if section:
            recipe[section][name] = draw(st.one_of(st.integers(), word, st.booleans()))
        else:
            recipe[name] = draw(st.one_of(st.integers(), word, tables))
        return tomli_w.dumps(recipe), f"{section}.{name}" if section else name, args
    if kind == "missing":
        key = draw(st.sampled_from(REQUIRED))
        section, _, name = key.partition(".")
        del (recipe[section] if name else recipe)[name or section]
        return tomli_w.dumps(recipe), key, args
    if kind == "toml":
        return draw(broken_toml(tomli_w.dumps(recipe))), "line", args
    if kind == "file":
        key, value = draw(st.sampled_from([
            ("data.train", "missing.jsonl"), ("data.eval", "missing/eval.csv"), ("data.train", "/no/such/t.jsonl"),
            ("data.train", "builtin:no-such-set"), ("model.name", "/no/such/model"), ("model.name", "./no-model"),
            ("model.name", "builtin:no-such-model"), ("hardware.profile", "no-such-profile"),
            ("hardware.profile", "missing.toml")]))
        return tomli_w.dumps(put(recipe, key, value)), key, args
    if kind == "name":
        key = draw(st.sampled_from(["method.name", "task.name"]))
        value = draw(st.text(LETTERS + "-_0123456789", min_size=1, max_size=12).filter(
            lambda v: v not in {"lora", "qlora", "prefix", "prompt", "ptuning", "ia3", "bottleneck", "full",
                                "freeze", "auto", "chat", "classification", "ner", "seq2seq", "lm"}))
        return tomli_w.dumps(put(recipe, key, value)), key, args
    if kind == "combination":
        which = draw(st.sampled_from(["prefix_checkpointing", "precision", "task_option", "method_option"]))
        if which == "prefix_checkpointing":
            recipe["method"] = {"name": "prefix"}
            put(recipe, "hardware.gradient_checkpointing", True)
            return tomli_w.dumps(recipe), "method.name", args
        if which == "precision":  # the profile does not list fp16
            put(put(recipe, "hardware.profile", "cpu-2c-24g"), "hardware.precision", "fp16")
            return tomli_w.dumps(recipe), "hardware.precision", args
        if which == "task_option":  # a classification option on an NER task
            put(put(recipe, "task.name", "ner"), "task.text_column", "text")
            return tomli_w.dumps(recipe), "task.text_column", args
        put(put(recipe, "method.name", draw(st.sampled_from(["full", "ia3", "prompt"]))), "method.r", 4)
        return tomli_w.dumps(recipe), "method.r", args
    if kind == "override":  # a bad --set on a good recipe
        key = draw(st.sampled_from(sorted(OUT_OF_RANGE)))
        if draw(st.booleans()):
            value = draw(OUT_OF_RANGE[key])
            return tomli_w.dumps(recipe), key, [f"--set={key}={value!r}".replace("'", '"')]
        broken = draw(st.sampled_from([key, f"{key}.deeper=1", f"={key}"]))  # no "=", not a section, no key
        return tomli_w.dumps(recipe), key, [f"--set={broken}"]
    section = draw(st.sampled_from(SECTIONS))  # "section_type": a section that is not a table
    recipe[section] = draw(st.one_of(st.integers(), word, arrays))
    return tomli_w.dumps(recipe), section, args


@st.composite
def broken_toml(draw, text: str) -> str:
    lines = text.splitlines()
    at = draw(st.integers(0, len(lines)))
    damage = draw(st.sampled_from(['[train', 'x = ', '= 3', 'name = "open', "[[data]]\ntrain = 1", "a = 1\na = 2",
                                   "[model]", 'k = [1, 2', "k = {a = 1", "3 = = 3", "key = 'x' extra", "k = 1e",
                                   "\x00", "k = 07", 'k = """x']))
    broken = "\n".join([*lines[:at], damage, *lines[at:]]) + "\n"
    try:
        tomllib.loads(broken)
    except tomllib.TOMLDecodeError:
        return broken
    return text + "\n" + damage + "\n[train\n"  # some damage is valid TOML where it landed; this never is


@pytest.fixture(scope="module")
def base(tiny_bert_dir, data_files) -> dict:
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files)
    recipe["method"]["r"] = 4
    recipe["task"]["text_column"] = "text"
    recipe["data"]["limit_train"] = 32
    recipe["hardware"]["profile"] = "cpu-2c-24g"
    recipe["hardware"]["precision"] = "fp32"
    del recipe["name"]
    return recipe


def run_cli(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    return code, err.getvalue()


def assert_rejected(text: str, key: str, extra: list[str], root: Path) -> None:
    folder = Path(tempfile.mkdtemp(dir=root))
    path = folder / "bad.toml"
    path.write_text(text)
    out = folder / "out"
    code, err = run_cli(["run", str(path), "--output", str(out), *extra])
    lines = err.strip().splitlines()
    assert code == 2, (code, err, text)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"adapterkit: error: {path}: "), (lines[0], text)
    named = lines[0][len(f"adapterkit: error: {path}: "):]
    assert key in named or (key == "line" and "end of document" in named), (key, lines[0], text)
    assert sorted(p.name for p in folder.iterdir()) == ["bad.toml"], "something was written"


def test_the_base_recipe_is_valid(base, tmp_path):
    from adapterkit import loading
    from adapterkit.plan import check_model, make_plan
    from adapterkit.recipe import recipe_from_dict

    plan = make_plan(recipe_from_dict(copy.deepcopy(base), source=str(tmp_path / "base.toml")))
    check_model(plan, loading.load_config(plan.recipe.model, plan.where))


@settings(max_examples=1100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_malformed_recipes_fail_with_one_line_naming_file_and_key(base, tmp_path_factory, data):
    text, key, extra = data.draw(cases(base))
    assert_rejected(text, key, extra, tmp_path_factory.getbasetemp())


@pytest.mark.parametrize("change, key", [
    ({"train": {"batch_size": "eight"}}, "train.batch_size"),
    ({"data": {"train": "missing.jsonl"}}, "data.train"),
])
def test_a_real_process_prints_one_line_and_exits_2(base, tmp_path, change, key):
    recipe = copy.deepcopy(base)
    for section, values in change.items():
        recipe[section].update(values)
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(recipe))
    done = subprocess.run([sys.executable, "-m", "adapterkit", "run", str(path), "--output", str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(f"adapterkit: error: {path}: {key}: ")
    assert not (tmp_path / "out").exists()
