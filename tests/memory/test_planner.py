"""The memory planner: profiles load, every shipped recipe plans from its config alone (fast, no weights),
published 7B figures are met, a recipe that does not fit is refused unless forced, method=auto chooses
as documented, per-method trainable-parameter estimates match the wrapped model, and each compatibility
check rejects with a one-line reason."""

from __future__ import annotations

import logging
import time

import pytest
from conftest import REPO, tiny_recipe

from adapterkit.errors import UserError
from adapterkit.recipe import recipe_from_dict

GB = 1e9
PROFILES = sorted((REPO / "recipes" / "profiles").glob("*.toml"))
RECIPES = sorted((REPO / "recipes").glob("*.toml"))


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_every_shipped_profile_loads(path):
    from adapterkit.hardware import load_profile

    hw = load_profile(str(path))
    assert hw.name == path.stem and hw.device in ("cpu", "cuda") and hw.memory_gb > 0
    assert hw.precision in hw.dtypes and hw.devices >= 1


def test_shipped_profiles_are_the_documented_set():
    assert {p.stem for p in PROFILES} >= {"cpu-2c-24g", "gpu-8g", "gpu-16g", "gpu-24g", "a100-40g", "a100-80g",
                                          "h100-80g"}


@pytest.fixture
def no_weights(monkeypatch):
    """Any from_pretrained of a model fails the test: planning must use the config only."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("the planner loaded weights")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_plan_every_shipped_recipe_without_weights(path, no_weights):
    from adapterkit.plan_report import plan_report

    # chat_dpo continues a chat_lora run's adapter (model.adapter), which a fresh checkout lacks: plan it fresh
    overrides = {"model.adapter": None} if path.stem == "chat_dpo" else None
    plan_report(path, profile="cpu-2c-24g", overrides=overrides)  # warm imports
    started = time.perf_counter()
    text, fits = plan_report(path, profile="cpu-2c-24g", overrides=overrides)
    assert time.perf_counter() - started < 15
    assert fits, text
    assert "PEAK" in text and "optimizer" in text and "activations" in text


def test_plan_cli_compares_methods(capsys):
    from adapterkit.cli import main

    code = main(["plan", str(REPO / "recipes" / "chat_lora.toml"), "--methods", "lora,qlora,full",
                 "--profile", "gpu-8g"])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "lora" in line and "full" in line)
    assert header.split() == ["lora", "qlora", "full"]
    assert code == 0 and out.count("fits:") == 3


@pytest.fixture(scope="module")
def llama7b_dir(tmp_path_factory) -> str:
    """Llama-2-7B's config, no weights."""
    from transformers import LlamaConfig

    folder = tmp_path_factory.mktemp("llama-7b")
    LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096).save_pretrained(folder)
    assert [p.name for p in folder.iterdir()] == ["config.json"]
    return str(folder)


def plan_7b(model_dir, method, profile="a100-80g", **hardware):
    """Published-figure assumptions: chat SFT, batch 1, 512 tokens, bf16, LoRA/QLoRA r=16 on q,k,v,o,
    gate, up, down (all-linear), AdamW, gradient checkpointing on (as the QLoRA paper and peft docs run)."""
    from adapterkit import loading
    from adapterkit.memory.verdict import assess, shape_of
    from adapterkit.plan import make_plan

    recipe = recipe_from_dict({
        "model": {"name": model_dir}, "method": {"name": method, **({"r": 16} if "lora" in method else {})},
        "task": {"name": "chat", "max_length": 512}, "data": {"train": "builtin:chatterbot"},
        "train": {"batch_size": 1, "grad_accum": 16},
        "hardware": {"profile": profile, "precision": "bf16", "gradient_checkpointing": True, **hardware}})
    plan = make_plan(recipe)
    config = loading.load_config(recipe.model, recipe.source)
    return plan, assess(plan, shape_of(plan, config)), config


@pytest.mark.parametrize("method, low, high", [("qlora", 5 * 0.8, 6 * 1.2), ("lora", 16 * 0.8, 16 * 1.2),
                                               ("full", 100, 135)])
def test_7b_matches_published_figures(llama7b_dir, no_weights, method, low, high):
    _, fit, _ = plan_7b(llama7b_dir, method)
    assert 6.7e9 < fit.estimate.total_params < 6.8e9
    assert low <= fit.estimate.peak / GB <= high, f"{method}: {fit.estimate.peak / GB:.1f} GB"


def test_7b_full_does_not_fit_an_80g_card_and_says_what_would(llama7b_dir):
    from adapterkit.memory.verdict import shape_of, verdict

    plan, fit, config = plan_7b(llama7b_dir, "full", profile="h100-80g")
    assert not fit.fits
    line = verdict(fit, shape_of(plan, config))
    assert line.startswith("does not fit") and "--set method.name=qlora" in line and "\n" not in line


@pytest.mark.parametrize("profile, expected", [("gpu-8g", "qlora"), ("gpu-24g", "lora")])
def test_method_auto_chooses_the_best_that_fits(llama7b_dir, profile, expected, caplog):
    from adapterkit.preflight import preflight

    recipe = recipe_from_dict({
        "model": {"name": llama7b_dir}, "method": {"name": "auto", "r": 8},
        "task": {"name": "chat", "max_length": 512}, "data": {"train": "builtin:chatterbot"},
        "train": {"batch_size": 1}, "hardware": {"profile": profile}})
    with caplog.at_level(logging.INFO, logger="adapterkit"):
        plan = preflight(recipe, memory="skip").plan
    assert plan.method.name == expected and plan.method_options.r == 8
    assert plan.recipe.method.name == expected
    assert f"method auto -> {expected}" in caplog.text and "full needs" in caplog.text


def test_method_auto_picks_full_when_it_fits_with_margin(tiny_llama_dir, data_files):
    from adapterkit.preflight import preflight

    recipe = recipe_from_dict(tiny_recipe("chat", "auto", tiny_llama_dir, data_files,
                                          hardware={"profile": "a100-80g", "precision": "auto"}))
    assert preflight(recipe).plan.method.name == "full"


def tiny_profile(tmp_path, memory_gb: float) -> str:
    path = tmp_path / "tiny-box.toml"
    path.write_text(f'device = "cpu"\nmemory_gb = {memory_gb}\ndtypes = ["fp32"]\nprecision = "fp32"\n')
    return str(path)


def test_run_refuses_what_does_not_fit_and_force_overrides(tiny_llama_dir, data_files, tmp_path, capsys):
    import tomli_w

    from adapterkit.cli import main

    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, data_files,
                         hardware={"profile": tiny_profile(tmp_path, 0.25)}, train={"max_steps": 1})
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(recipe))
    started = time.perf_counter()
    code = main(["run", str(path), "--output", str(tmp_path / "refused")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "does not fit" in err and "--force" in err, err
    assert time.perf_counter() - started < 20 and not (tmp_path / "refused" / "run.json").exists()
    code = main(["run", str(path), "--output", str(tmp_path / "forced"), "--force"])
    assert code == 0 and (tmp_path / "forced" / "run.json").is_file()


TRAINABLE_CASES = [("lora", {}), ("lora", {"target_modules": ["query", "value"]}), ("qlora", {}), ("full", {}),
                   ("freeze", {}), ("prompt", {}), ("ptuning", {}), ("prefix", {}), ("ia3", {}),
                   ("bottleneck", {"config": "houlsby"}), ("bottleneck", {"train_layer_norms": True}),
                   ("adalora", {}), ("loha", {}), ("lokr", {}), ("lokr", {"r": 2, "decompose_both": True}),
                   ("vera", {"r": 16}), ("oft", {"block_size": 8}), ("oft", {"block_share": True}), ("boft", {}),
                   ("lora", {"init": "olora"})]


@pytest.mark.parametrize("method, options", TRAINABLE_CASES, ids=lambda x: str(x))
def test_trainable_estimate_matches_the_wrapped_model(method, options, tiny_bert_dir, data_files):
    """Each method's footprint, from sizes only, against the parameters that really require grad."""
    from adapterkit import api, loading, measure
    from adapterkit.memory.verdict import assess, shape_of
    from adapterkit.plan import make_plan

    recipe = recipe_from_dict(tiny_recipe("classification", method, tiny_bert_dir, data_files,
                                          method=options, data={"limit_train": 16}))
    plan = make_plan(recipe)
    config = loading.load_config(recipe.model, recipe.source)
    predicted = assess(plan, shape_of(plan, config)).estimate.trainable_params
    tokenizer = loading.load_tokenizer(recipe.model, recipe.source)
    actual = measure.parameter_counts(api.prepare_model(plan, tokenizer, plan.task.load_data(plan)))["trainable_params"]
    assert predicted == pytest.approx(actual, rel=0.02), f"{method}: predicted {predicted}, actual {actual}"


def check_message(recipe_dict, expected):
    from adapterkit import loading
    from adapterkit.plan import check_model, make_plan

    with pytest.raises(UserError) as info:
        recipe = recipe_from_dict(recipe_dict)
        plan = make_plan(recipe)
        check_model(plan, loading.load_config(recipe.model, recipe.source))
    message = str(info.value)
    assert expected in message and "\n" not in message, message


def test_prefix_with_gradient_checkpointing_is_rejected(tiny_llama_dir, data_files):
    check_message(tiny_recipe("chat", "prefix", tiny_llama_dir, data_files, hardware={"gradient_checkpointing": True}),
                  "does not work with gradient checkpointing (peft #869)")


def test_qlora_without_4bit_kernels_is_rejected(tiny_llama_dir, data_files, tmp_path):
    profile = tmp_path / "no-bnb.toml"
    profile.write_text('device = "cpu"\nmemory_gb = 8\nbnb_4bit = false\nprecision = "fp32"\n')
    check_message(tiny_recipe("chat", "qlora", tiny_llama_dir, data_files, hardware={"profile": str(profile)}),
                  "needs 4-bit kernels, which profile 'no-bnb' lacks")


def test_max_length_over_the_model_maximum_is_rejected(tiny_llama_dir, data_files):
    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, data_files)
    recipe["task"]["max_length"] = 4096
    check_message(recipe, "task.max_length 4096 exceeds the model's maximum of 512 positions")


def test_task_that_does_not_fit_the_model_class_is_rejected(tiny_llama_dir, data_files, tmp_path):
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path)
    check_message(tiny_recipe("chat", "lora", str(tmp_path), data_files),
                  "task 'chat' needs a model with a AutoModelForCausalLM head; model type 'vit' has none")


def test_precision_the_profile_lacks_is_rejected(tiny_llama_dir, data_files):
    check_message(tiny_recipe("chat", "lora", tiny_llama_dir, data_files,
                              hardware={"profile": "gpu-16g", "precision": "bf16"}),
                  "precision bf16 is not supported by profile 'gpu-16g' (supported: fp16, fp32)")


def test_profile_batch_defaults_apply_as_a_pair(tiny_llama_dir, data_files):
    from adapterkit.plan import make_plan

    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, data_files, hardware={"profile": "gpu-8g"})
    del recipe["train"]["batch_size"]
    train = make_plan(recipe_from_dict(recipe)).recipe.train
    assert (train.batch_size, train.grad_accum) == (1, 16)  # gpu-8g's defaults
    recipe["train"]["batch_size"] = 4
    train = make_plan(recipe_from_dict(recipe)).recipe.train
    assert (train.batch_size, train.grad_accum) == (4, 1)  # the recipe's batch, not the profile's accumulation


def test_heap_slack_is_cpu_only_and_counts_lora_branches(no_weights, cpu_kind):
    """glibc's retained heap (memory.py: heap slack) is planned on CPU only; LoRA's freed branch outputs add
    to it: in fp32 the base output only, the sum being one addmm (methods/fused_lora_sum.py), under bf16 B's output
    and its scaled copy (peft's sum); QLoRA's 4-bit layers keep peft's sum in fp32 too. On an AMX CPU peft's sum
    keeps that kind's measured bytes; the fused sum the same as elsewhere."""
    from adapterkit import loading
    from adapterkit.memory.calibration import (
        ADAPTER_TEMP_BYTES,
        ADAPTER_TEMP_BYTES_BY_KIND,
        CPU_HEAP_SLACK,
        FUSED_SUM_TEMP_BYTES,
    )
    from adapterkit.memory.verdict import assess, shape_of, workload
    from adapterkit.plan import load_recipe, make_plan

    def planned(name, profile, precision="fp32"):
        recipe = load_recipe(REPO / "recipes" / f"{name}.toml", [f"hardware.profile={profile}",
                                                                f"hardware.precision={precision}"])
        plan = make_plan(recipe)
        shape = shape_of(plan, loading.load_config(recipe.model, recipe.source))
        work = workload(plan)
        branch = plan.method.footprint(plan.method_options, shape).branch_out_features * work.batch_size * work.seq_len
        return assess(plan, shape).estimate.terms, branch

    (full, _), (lora, branch) = planned("sentiment_full", "cpu-2c-24g"), planned("sentiment_lora", "cpu-2c-24g")
    assert full["heap slack"] == pytest.approx(CPU_HEAP_SLACK * full["activations"])
    assert lora["heap slack"] == pytest.approx(CPU_HEAP_SLACK * lora["activations"] + FUSED_SUM_TEMP_BYTES * branch)
    bf16, branch16 = planned("sentiment_lora", "cpu-2c-24g", "bf16")
    assert bf16["heap slack"] - CPU_HEAP_SLACK * lora["activations"] == pytest.approx(ADAPTER_TEMP_BYTES["bf16"] * branch16)
    qlora, branch4 = planned("chat_qlora", "cpu-2c-24g")
    assert qlora["heap slack"] == pytest.approx(CPU_HEAP_SLACK * qlora["activations"] + ADAPTER_TEMP_BYTES["fp32"] * branch4)
    assert planned("sentiment_lora", "gpu-24g")[0]["heap slack"] == 0.0
    cpu_kind("cpu-amx")
    amx = ADAPTER_TEMP_BYTES_BY_KIND["cpu-amx"]
    assert amx["bf16"] != ADAPTER_TEMP_BYTES["bf16"] and amx["fp32"] != ADAPTER_TEMP_BYTES["fp32"]
    bf16_amx = planned("sentiment_lora", "cpu-2c-24g", "bf16")[0]
    assert bf16_amx["heap slack"] - CPU_HEAP_SLACK * lora["activations"] == pytest.approx(amx["bf16"] * branch16)
    assert planned("chat_qlora", "cpu-2c-24g")[0]["heap slack"] == pytest.approx(
        CPU_HEAP_SLACK * qlora["activations"] + amx["fp32"] * branch4)
    assert planned("sentiment_lora", "cpu-2c-24g")[0]["heap slack"] == pytest.approx(lora["heap slack"])  # fused: as elsewhere


@pytest.mark.parametrize("method, task, rows, tokens", [
    ("lora", {}, 1, 256),  # padding-free: one row of at most tokens_per_pass (or one max_length conversation)
    ("lora", {"tokens_per_pass": 1024}, 1, 1024),
    ("lora", {"tokens_per_pass": 16}, 1, 256),  # a whole conversation is one pass, however long
    ("lora", {"padding_free": False}, 8, 256),  # padded rows of max_length
    ("prompt", {}, 8, 256),  # prompt learning keeps padded rows
])
def test_chat_is_planned_by_its_largest_forward_pass(tiny_llama_dir, data_files, method, task, rows, tokens):
    from adapterkit.memory.verdict import workload
    from adapterkit.plan import make_plan

    recipe = tiny_recipe("chat", method, tiny_llama_dir, data_files, train={"batch_size": 8})
    recipe["task"].update(max_length=256, **task)
    work = workload(make_plan(recipe_from_dict(recipe)))
    assert (work.batch_size, work.seq_len) == (rows, tokens)
    assert work.eval_batch_size * work.seq_len >= 16 * 256  # eval: 16 rows of max_length at most
