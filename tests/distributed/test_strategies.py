"""Strategies before launch: the one-line refusals, the per-device plan and auto's choice (no process is
started; the model is built on the meta device), and how the launcher reports a failed rank."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapterkit.errors import UserError
from adapterkit.recipe import recipe_from_dict
from tests.conftest import tiny_recipe

REPO = Path(__file__).resolve().parents[2]
LLAMA_70B = str(REPO / "benchmarks" / "scale" / "llama-2-70b")
GIB = 2**30


def preflight_of(recipe: dict, memory: str = "assess"):
    from adapterkit.preflight import preflight

    return preflight(recipe_from_dict(recipe), memory=memory)


def refused(recipe: dict, expected: str, memory: str = "assess") -> None:
    with pytest.raises(UserError) as info:
        preflight_of(recipe, memory)
    message = str(info.value)
    assert expected in message and "\n" not in message, message


@pytest.fixture
def chat(tiny_llama_dir, data_files):
    def make(method="lora", **hardware):
        return tiny_recipe("chat", method, tiny_llama_dir, data_files, hardware={"profile": "a100-80g", **hardware})
    return make


def test_global_batch_that_does_not_divide_by_the_world_size(tiny_bert_dir, data_files):
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files, train={"batch_size": 9},
                         hardware={"devices": 2})
    refused(recipe, "train.batch_size 9 is the global batch and must divide by the world size 2")
    recipe["hardware"].update(devices=1, nodes=3)
    recipe["train"]["batch_size"] = 8
    refused(recipe, "world size 3 (3 node(s) x 1 device(s)); use e.g. --set train.batch_size=9")


def test_fsdp_and_deepspeed_need_gpus(tiny_bert_dir, data_files):
    for strategy in ("fsdp", "deepspeed-zero2"):
        recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files,
                             hardware={"devices": 2, "strategy": strategy})
        refused(recipe, f"strategy {strategy} needs GPUs")


def test_zero3_with_device_map_is_refused(chat):
    refused(chat("qlora", strategy="deepspeed-zero3", devices=2), "cannot take a model placed with device_map")


def test_fsdp_over_4bit_weights_needs_a_shardable_storage_dtype(chat):
    refused(chat("qlora", strategy="fsdp", devices=2), 'set method.quant_storage = "bf16"')
    recipe = chat("qlora", strategy="fsdp", devices=2)
    recipe["method"]["quant_storage"] = "bf16"
    plan = preflight_of(recipe).plan
    assert plan.hardware.strategy == "fsdp"
    from adapterkit.loading import quantization_config

    assert str(quantization_config(plan).bnb_4bit_quant_storage) == "torch.bfloat16"


def test_prompt_learning_under_fsdp_is_refused(chat):
    refused(chat("prompt", strategy="fsdp", devices=2), "method 'prompt' (prompt learning)")
    assert preflight_of(chat("prompt", strategy="ddp", devices=2)).plan.hardware.strategy == "ddp"


def test_deepspeed_missing_and_fewer_devices_are_refused_at_launch(chat, tiny_bert_dir, data_files):
    refused(chat(strategy="deepspeed-zero2", devices=2), "pip install deepspeed", memory="enforce")
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files, train={"batch_size": 64},
                         hardware={"devices": 64})
    refused(recipe, "asks for 64 devices but this machine has", memory="enforce")


def test_cli_refuses_before_any_rank_starts(one_step_recipe, capsys):
    from adapterkit.cli import main

    assert main(["run", str(one_step_recipe), "--devices", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must divide by the world size 3" in err and "launching" not in err


@pytest.mark.parametrize("flag", ["--devices", "--nnodes"])
def test_zero_devices_or_nodes_is_refused_not_ignored(one_step_recipe, capsys, flag):
    from adapterkit.cli import main

    assert main(["plan", str(one_step_recipe), flag, "0"]) == 2  # 0 had been taken for "not given": exit 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag} 0: give at least 1" in err


def _llama70b(method: str, profile: str, **hardware) -> dict:
    return {"model": {"name": LLAMA_70B}, "method": {"name": method, **({"r": 16} if "lora" in method else {})},
            "task": {"name": "chat", "max_length": 512}, "data": {"train": "builtin:chatterbot"},
            "train": {"batch_size": 8},
            "hardware": {"profile": profile, "precision": "bf16", "gradient_checkpointing": True, **hardware}}


@pytest.mark.parametrize("method, strategy, low, high", [
    ("qlora", "ddp", 35, 45),     # fits one A100 with room: replicated, ~40 GiB
    ("lora", "fsdp", 15, 25),     # 138 GB of bf16 weights / 8 + a block's all-gather
])
def test_70b_on_8_a100_names_a_strategy_and_per_device_memory(method, strategy, low, high, caplog):
    with caplog.at_level(logging.INFO, logger="adapterkit"):
        fit = preflight_of(_llama70b(method, "8x-a100-80g")).fit
    assert fit.plan.hardware.strategy == strategy and fit.plan.hardware.world_size == 8
    assert f"strategy auto -> {strategy}" in caplog.text
    assert low < fit.estimate.peak / GIB < high and fit.fits


def test_70b_full_on_8_a100_needs_more_than_sharding_and_says_what_fits():
    from adapterkit.memory.verdict import verdict

    fit = preflight_of(_llama70b("full", "8x-a100-80g")).fit
    assert not fit.fits and fit.plan.hardware.strategy == "fsdp"
    assert 1000 < fit.estimate.peak * 8 / GIB < 1300  # LLaMA-Factory: ~1,200 GB in total
    assert "--set hardware.cpu_offload=true" in verdict(fit, fit.shape)


def test_sharding_divides_what_each_strategy_shards():
    from dataclasses import replace

    from adapterkit.memory.verdict import assess

    plan = preflight_of(_llama70b("full", "8x-a100-80g", strategy="ddp")).plan
    shape = preflight_of(_llama70b("full", "8x-a100-80g", strategy="ddp")).fit.shape
    by = {s: assess(replace(plan, hardware=replace(plan.hardware, strategy=s)), shape).estimate.terms
          for s in ("ddp", "deepspeed-zero2", "fsdp")}
    assert by["deepspeed-zero2"]["optimizer"] == pytest.approx(by["ddp"]["optimizer"] / 8)
    assert by["deepspeed-zero2"]["weights"] == by["ddp"]["weights"]
    assert by["fsdp"]["weights"] == pytest.approx(by["ddp"]["weights"] / 8)
    assert by["fsdp"]["all-gather buffer"] > 0 and by["ddp"]["gradient buckets"] == by["ddp"]["gradients"]


def test_qlora_70b_on_two_24g_cards_with_fsdp_and_cpu_offload():
    recipe = _llama70b("qlora", "2x-rtx4090-24g", strategy="fsdp", cpu_offload=True)
    recipe["method"]["quant_storage"] = "bf16"
    recipe["train"]["batch_size"] = 2
    fit = preflight_of(recipe).fit
    assert fit.fits and fit.estimate.peak / GIB < 4 and fit.estimate.offloaded / GIB > 15


def test_plan_prints_the_per_device_table(capsys):
    from adapterkit.cli import main

    main(["plan", str(REPO / "benchmarks" / "scale" / "llama2_70b_qlora.toml"), "--methods", "qlora,lora"])
    out = capsys.readouterr().out
    assert "= 8 ranks" in out and "PEAK per device" in out and "total x8" in out
    assert [line.split()[1:] for line in out.splitlines() if line.startswith("strategy ")] == [["ddp", "fsdp"]]


def test_trainer_settings_per_strategy():
    from adapterkit.hardware import Hardware
    from adapterkit.strategies import trainer_kwargs

    ddp = trainer_kwargs(Hardware("x", devices=2))
    assert ddp["accelerator_config"] == {"split_batches": True} and "fsdp" not in ddp
    fsdp = trainer_kwargs(Hardware("x", device="cuda", devices=8, strategy="fsdp", cpu_offload=True,
                                   gradient_checkpointing=True))
    assert fsdp["fsdp"] is True and fsdp["fsdp_config"]["version"] == 2 and fsdp["fsdp_config"]["cpu_offload"]
    assert fsdp["fsdp_config"]["activation_checkpointing"] and fsdp["activation_checkpointing"] is False
    zero3 = trainer_kwargs(Hardware("x", device="cuda", devices=8, strategy="deepspeed-zero3", cpu_offload=True))
    zero = zero3["deepspeed"]["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_param"]["device"] == "cpu"


def test_launcher_reports_each_rank_in_one_line():
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from adapterkit.launch import failure_lines

    err = ChildFailedError("adapterkit", {0: ProcessFailure(0, 10, -15, "<N/A>"),
                                          1: ProcessFailure(1, 11, -9, "<N/A>")})
    lines, code = failure_lines(err)
    assert code == 1 and len(lines) == 2
    assert "rank 1 (pid 11) was killed by SIGKILL" in lines


@pytest.mark.parametrize("batch_size, max_steps, warned", [(24, -1, True), (8, -1, False), (24, 2, False), (24, 3, True)])
def test_several_ranks_warn_when_the_last_batch_of_an_epoch_is_padded(batch_size, max_steps, warned, tiny_bert_dir,
                                                                     data_files, caplog):
    """64 train rows: a global batch of 24 leaves a last batch of 16, which accelerate completes with 8 rows of the
    first batch on 2 ranks (that step is not one process's); said once, unless the run stops before it."""
    from adapterkit.training import warn_uneven_last_batch

    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files, hardware={"devices": 2},
                         train={"batch_size": batch_size, "max_steps": max_steps, "epochs": 1.0})
    plan = preflight_of(recipe).plan
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        text = warn_uneven_last_batch(plan, plan.task.load_data(plan))
    assert bool(text) == warned and (text in caplog.text if warned else not caplog.text)
    if warned:
        assert "64 train rows do not divide by train.batch_size 24" in text and "\n" not in text
