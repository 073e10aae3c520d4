"""The planner's oneDNN term (memory/kernels.py): under bf16 on a CPU a run keeps ~0.7 MiB per matmul primitive,
one per distinct shape and token count, so the term grows with the lengths a run can meet; fp32 and CUDA keep none."""

from __future__ import annotations

import pytest
from conftest import tiny_recipe

from adapterkit.recipe import recipe_from_dict

pytestmark = pytest.mark.usefixtures("cpu_kind")  # constants per kind of CPU: plan as the AMD EPYC

MIB = 2**20


def _estimate(model_dir, files, task="chat", method="lora", precision="bf16", max_length=256, profile="cpu-2c-24g",
              method_options=None, **task_options):
    from adapterkit import loading
    from adapterkit.memory.verdict import assess, shape_of, workload
    from adapterkit.plan import make_plan

    recipe = tiny_recipe(task, method, model_dir, files, hardware={"profile": profile, "precision": precision},
                         method=method_options or {})
    recipe["task"].update({"max_length": max_length, **task_options})
    plan = make_plan(recipe_from_dict(recipe))
    shape = shape_of(plan, loading.load_config(plan.recipe.model, plan.recipe.source))
    return workload(plan).pass_lengths, assess(plan, shape).estimate


def _planned(base_and_per_length, lengths):
    from adapterkit.memory.calibration import ONEDNN_BASE_MIB, ONEDNN_PRIMITIVE_MIB

    return pytest.approx((ONEDNN_BASE_MIB + ONEDNN_PRIMITIVE_MIB * base_and_per_length * lengths) * MIB)


# The tiny Llama's linears: 32 -> 32 (q, o), 32 -> 16 (k, v), 32 -> 64 (gate, up), 64 -> 32 (down), and its LM head
# 32 -> vocab: 5 frozen shapes, 2 primitives each (forward, input gradient). LoRA r=4 on q_proj only: A is 32 -> 4,
# B is 4 -> 32: 2 trained shapes, 3 primitives each (+ the weight's gradient).
Q_LORA = {"r": 4, "target_modules": ["q_proj"]}
PER_LENGTH = 5 * 2 + 2 * 3


def test_bf16_kernels_grow_with_the_lengths_a_run_can_meet(tiny_llama_dir, data_files):
    for max_length, lengths in ((256, 16), (64, 4)):
        # padding-free passes of up to tokens_per_pass tokens; padded batches are padded to their longest row
        for padding_free in (True, False):
            got, est = _estimate(tiny_llama_dir, data_files, max_length=max_length, padding_free=padding_free,
                                 tokens_per_pass=max_length, method_options=Q_LORA)
            assert got == lengths, padding_free
            assert est.terms["low-precision kernels"] == _planned(PER_LENGTH, lengths), padding_free
    small, large = (_estimate(tiny_llama_dir, data_files, max_length=n, tokens_per_pass=n, method_options=Q_LORA)[1]
                    for n in (64, 256))
    grown = large.terms["low-precision kernels"] - small.terms["low-precision kernels"]
    assert grown > 0 and large.train - small.train >= grown  # the term is part of what the train phase plans


def test_an_amx_cpu_plans_its_own_mib_per_primitive(tiny_llama_dir, data_files, cpu_kind):
    """oneDNN keeps less per primitive on AMX (0.59 MiB measured, calibration.py): the term follows the CPU's kind."""
    from adapterkit.memory.calibration import ONEDNN_BASE_MIB, ONEDNN_PRIMITIVE_MIB_BY_KIND

    avx512 = _estimate(tiny_llama_dir, data_files, method_options=Q_LORA)[1].terms["low-precision kernels"]
    cpu_kind("cpu-amx")
    lengths, est = _estimate(tiny_llama_dir, data_files, method_options=Q_LORA)
    each = ONEDNN_PRIMITIVE_MIB_BY_KIND["cpu-amx"]
    assert est.terms["low-precision kernels"] == pytest.approx((ONEDNN_BASE_MIB + each * PER_LENGTH * lengths) * MIB)
    assert est.terms["low-precision kernels"] < avx512 == _planned(PER_LENGTH, lengths)


def test_fp32_and_cuda_plan_no_kernels(tiny_llama_dir, data_files):
    for precision, profile in (("fp32", "cpu-2c-24g"), ("fp16", "gpu-16g")):
        lengths, est = _estimate(tiny_llama_dir, data_files, precision=precision, profile=profile)
        assert (lengths, est.terms["low-precision kernels"]) == (1, 0.0), precision


def test_full_fine_tuning_plans_the_weight_gradients_primitives(tiny_llama_dir, data_files):
    lengths, est = _estimate(tiny_llama_dir, data_files, method="full", max_length=64)
    assert est.terms["low-precision kernels"] == _planned(5 * 3, lengths)


def test_packed_lm_blocks_meet_one_length_and_orpo_every_length(tiny_llama_dir, data_files):
    files = {"lm_train": data_files["classification_train"], "lm_eval": data_files["classification_eval"]}
    lengths, lm = _estimate(tiny_llama_dir, files, task="lm", max_length=64, method_options=Q_LORA)
    assert (lengths, lm.terms["low-precision kernels"]) == (1, _planned(PER_LENGTH, 1))
    pairs = {"preference_train": data_files["chat_train"], "preference_eval": data_files["chat_eval"]}
    for loss, expected in (("dpo", 4), ("orpo", 64)):  # trl pads DPO's batches to a multiple, not ORPO's
        assert _estimate(tiny_llama_dir, pairs, task="preference", max_length=64, loss=loss)[0] == expected, loss
