"""Recipe validation: typed sections, overrides, and one-line errors that name the file and key."""

from __future__ import annotations

import pytest

from adapterkit.errors import UserError
from adapterkit.overrides import apply_overrides, parse_override
from adapterkit.plan import load_recipe

GOOD = """
[model]
name = "builtin:minilm-l6"
[method]
name = "lora"
r = 4
[task]
name = "classification"
[data]
train = "builtin:rotten-tomatoes"
[train]
max_steps = 5
"""


def write(tmp_path, text, name="r.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_recipe_fills_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD))
    assert recipe.name == "r"
    assert recipe.method.options == {"r": 4}
    assert recipe.train.max_steps == 5 and recipe.train.batch_size == 8
    assert recipe.data.eval == 0.1 and recipe.hardware.profile == "auto"


def test_overrides_are_toml_literals():
    assert parse_override("train.max_steps=20") == (["train", "max_steps"], 20)
    assert parse_override("method.target_modules=[\"q\", \"v\"]") == (["method", "target_modules"], ["q", "v"])
    assert parse_override("model.name=builtin:minilm-l6") == (["model", "name"], "builtin:minilm-l6")
    data = apply_overrides({"train": {"max_steps": 1}}, ["train.max_steps=7", "method.r=2"])
    assert data == {"train": {"max_steps": 7}, "method": {"r": 2}}


@pytest.mark.parametrize("item, hint", [
    ("method={name=loha}", """--set 'method={name="loha"}'"""),  # what bash leaves of --set method={name="loha"}
    ("task.generate_eval=[rouge, bleu]", """--set 'task.generate_eval=["rouge", "bleu"]'"""),
    ("data.columns={text=review, label=sentiment}", """--set 'data.columns={text="review", label="sentiment"}'"""),
    ("method={name=lora, use_dora=true}", """--set 'method={name="lora", use_dora=true}'"""),
    ("method={name=\"lora\"", "check its brackets and commas"),
])
def test_a_table_or_array_the_shell_unquoted_is_refused_with_what_to_type(item, hint):
    """Kept as a string, ``{name=loha}`` failed later as "method: Input should be a valid dictionary"."""
    with pytest.raises(UserError) as err:
        parse_override(item)
    assert hint in str(err.value) and "\n" not in str(err.value)
    # what the hint says to type parses to what was meant
    if hint.startswith("--set"):
        key, _, value = hint[len("--set '"):-1].partition("=")
        assert parse_override(f"{key}={value}")[0] == key.split(".")


def test_cli_overrides_reach_the_recipe(tmp_path):
    recipe = load_recipe(write(tmp_path, GOOD), ["train.max_steps=20", "method.r=8"])
    assert recipe.train.max_steps == 20 and recipe.method.options["r"] == 8


def test_a_recipe_object_takes_the_overrides_and_is_validated_again(tmp_path):
    """``adapterkit.run(recipe_object, overrides=...)`` dropped the overrides, and an object edited with pydantic's
    ``model_copy`` (which does not validate) failed deep in the run; both go through ``load_recipe``."""
    recipe = load_recipe(write(tmp_path, GOOD))
    again = load_recipe(recipe, {"train.max_steps": 9, "method.r": 2, "data.train": tmp_path / "t.jsonl"})
    assert again.train.max_steps == 9 and again.method.options["r"] == 2 and again.data.train == str(tmp_path / "t.jsonl")
    assert again.source == recipe.source and again.name == "r" and recipe.train.max_steps == 5
    edited = recipe.model_copy(update={"train": recipe.train.model_copy(update={"max_steps": "x"})})
    with pytest.raises(UserError, match="train.max_steps: Input should be a valid integer"):
        load_recipe(edited)


@pytest.mark.parametrize("overrides, expected", [
    ("train.max_steps=2", "overrides must be a dict"),
    ([3], "3 is not a 'KEY=VALUE' string"),
    ({1: 2}, "key 1 is not a dotted recipe key"),
])
def test_library_overrides_of_the_wrong_shape_are_one_line(tmp_path, overrides, expected):
    with pytest.raises(UserError, match=expected):
        load_recipe(write(tmp_path, GOOD), overrides)


@pytest.mark.parametrize("change, expected", [
    (("[train]\nmax_steps = 5", "[train]\nmax_steps = \"many\""), "train.max_steps: Input should be a valid integer"),
    (("[train]\nmax_steps = 5", "[train]\nmax_step = 5"), "train.max_step: unknown key"),
    (("name = \"lora\"", "name = \"lorra\""), "method.name: unknown method 'lorra'; did you mean 'lora'?"),
    (("r = 4", "r = -1"), "method.r: Input should be greater than 0"),
    (("r = 4", "rank = 4"), "method.rank: unknown key"),
    (("name = \"classification\"", "name = \"clasification\""), "unknown task 'clasification'"),
    (("[data]", "[dataa]"), "dataa: unknown key"),
    (("[model]", "[modell]"), "model: required key is missing"),
])
def test_bad_recipes_name_file_and_key(tmp_path, change, expected):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(UserError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message, message
    assert "\n" not in message


def test_broken_toml_names_the_line(tmp_path):
    path = write(tmp_path, GOOD + "\n[train\n")
    with pytest.raises(UserError, match=r"r\.toml: not valid TOML.*line"):
        load_recipe(path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.toml")
    with pytest.raises(UserError, match="is a folder, not a recipe file"):  # was "not found"
        load_recipe(tmp_path)


def test_a_byte_order_mark_is_read_past(tmp_path):
    """Some editors save UTF-8 with an invisible BOM; TOML then failed at "line 1, column 1"."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_recipe(path).train.max_steps == load_recipe(write(tmp_path, GOOD)).train.max_steps


def test_method_must_suit_task(tmp_path):
    from adapterkit.methods import METHODS
    from adapterkit.methods.base import Method, Needs
    from adapterkit.methods.full import FullOptions

    only_chat = Method(name="chatonly-test", trains="x", options=FullOptions, default_learning_rate=1e-3,
                       wrap=lambda m, o, c: m, save=lambda m, p: None, load=lambda m, p: m,
                       needs=Needs(tasks=("chat",)))
    METHODS.register(only_chat)
    try:
        path = write(tmp_path, GOOD.replace("name = \"lora\"\nr = 4", "name = \"chatonly-test\""))
        with pytest.raises(UserError, match="does not suit task 'classification'"):
            load_recipe(path)
    finally:
        METHODS._load().pop("chatonly-test")


def test_every_shipped_recipe_validates():
    from conftest import REPO

    recipes = sorted((REPO / "recipes").glob("*.toml"))
    assert len(recipes) >= 7
    for path in recipes:
        recipe = load_recipe(path)
        assert recipe.name == path.stem
