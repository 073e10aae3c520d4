"""The search space of ``adapterkit tune``: the recipe's ``[tune]`` table and ``--space`` items, parsed and
checked as the recipe keys they set; every mistake is one line naming the key, before anything runs."""

from __future__ import annotations

import optuna
import pytest
import tomli_w
from conftest import tiny_recipe

from adapterkit.cli import main
from adapterkit.plan import load_recipe
from adapterkit.tune.space import check_space, read_space, suggest


@pytest.fixture
def recipe_file(tmp_path, tiny_bert_dir, data_files):
    def write(tune: dict | None = None, **sections):
        recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files, **sections)
        if tune is not None:
            recipe["tune"] = tune
        path = tmp_path / "tiny.toml"
        path.write_text(tomli_w.dumps(recipe))
        return path
    return write


def test_dimensions_from_the_recipe_and_the_command_line(recipe_file):
    path = recipe_file({"method": {"name": ["lora", "ia3"], "r": [4, 8]}, "train": {"learning_rate": "1e-5..1e-2:log"}})
    recipe = load_recipe(path)  # adapterkit run reads a recipe with a [tune] table and ignores it
    space = read_space(recipe, ["method.r=[2,4,16]", "train.warmup_ratio=0..0.2"])
    check_space(space, recipe, path, [])
    assert space["method.r"].choices == (2, 4, 16)  # --space replaces the recipe's entry
    lr, warmup = space["train.learning_rate"], space["train.warmup_ratio"]
    assert (lr.low, lr.high, lr.log, lr.integer) == (1e-5, 1e-2, True, False)
    assert (warmup.low, warmup.high, warmup.log) == (0, 0.2, False)
    assert read_space(recipe, ["method.r=4..32"])["method.r"].integer
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    methods_seen = set()
    for _ in range(12):  # method.r goes only to the methods that take it; ia3 runs at its defaults
        trial = study.ask()
        sets = suggest(trial, space, recipe, ["train.max_steps=2"])
        method = trial.params["method.name"]
        methods_seen.add(method)
        assert ("method.r" in trial.params) == (method == "lora")
        assert any(s.startswith("train.learning_rate=") for s in sets) and "train.max_steps=2" in sets
        if method == "ia3":
            assert "method={name = 'ia3'}" in sets
        assert load_recipe(path, sets).method.name == method
        study.tell(trial, 0.5)
    assert methods_seen == {"lora", "ia3"}


@pytest.mark.parametrize("tune, space, expected", [
    ({}, [], "no search space"),
    ({"train": {"learnin_rate": "1e-5..1e-2:log"}}, [], "tune.train.learnin_rate: 1e-05: train.learnin_rate: unknown key"),
    ({"train": {"learning_rate": "1e-5..20"}}, [], "tune.train.learning_rate: 20: train.learning_rate: Input should be less"),
    ({"train": {"learning_rate": "1e-2..1e-5:log"}}, [], "the low bound must be below the high one"),
    ({"train": {"learning_rate": "0..1e-2:log"}}, [], "a log range needs a positive low bound"),
    ({"train": {"learning_rate": 3e-4}}, [], "expected a list of choices such as [4, 8, 16] or a range"),
    ({"method": {"name": ["lora", "loar"]}}, [], "tune.method.name: unknown method 'loar'"),
    ({"method": {"name": ["ia3"], "r": [4, 8]}}, [], "tune.method.r: no method in the search (ia3) takes option 'r'"),
    ({"method": {"r": [4, 0]}}, [], "tune.method.r: 0 for lora: method.r: Input should be greater than"),
    ({}, ["train.batch_size=[]"], "--space train.batch_size: an empty list of choices"),
    ({}, ["train.batch_size=8"], "--space train.batch_size: 8: expected a list"),
    ({}, ["method.r=[4,8"], "--space 'method.r=[4,8': not a TOML array"),  # named --set before
    ({}, ["method.r"], "--space 'method.r': expected KEY=VALUE"),
])
def test_mistakes_are_one_line_naming_the_key(recipe_file, capsys, tmp_path, tune, space, expected):
    path = recipe_file(tune)
    args = ["tune", str(path), "--trials", "2", "--output", str(tmp_path / "out")]
    assert main([*args, *(a for s in space for a in ("--space", s))]) == 2
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.startswith("adapterkit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("flags, expected", [
    (["--budget", "30"], "--budget: '30': expected a positive duration"),
    (["--trials", "0"], "--trials: 0: must be at least 1"),
])
def test_bad_flags(recipe_file, capsys, tmp_path, flags, expected):
    path = recipe_file({"train": {"learning_rate": "1e-5..1e-2:log"}})
    assert main(["tune", str(path), "--output", str(tmp_path / "out"), *flags]) == 2
    assert expected in capsys.readouterr().err
