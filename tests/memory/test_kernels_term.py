"""The planner's oneDNN term (memory/kernels.py): under bf16 on a CPU a run keeps ~0.7 MiB per matmul primitive,
one per distinct shape and token count, so the term grows with the lengths a run can meet; fp32 keeps none."""

from __future__ import annotations

import pytest
from conftest import tiny_recipe

from adapterkit.recipe import recipe_from_dict

MIB = 2**20


def _kernels(model_dir, files, task="chat", method="lora", precision="bf16", max_length=256, **task_options):
    from adapterkit import loading
    from adapterkit.memory.verdict import assess, shape_of, workload
    from adapterkit.plan import make_plan

    options = {"r": 4, "target_modules": "all-linear"} if method == "lora" else {}
    recipe = tiny_recipe(task, method, model_dir, files, hardware={"precision": precision}, method=options)
    recipe["task"].update({"max_length": max_length, **task_options})
    plan = make_plan(recipe_from_dict(recipe))
    shape = shape_of(plan, loading.load_config(plan.recipe.model, plan.recipe.source))
    return workload(plan).pass_lengths, assess(plan, shape).estimate.terms["low-precision kernels"]


def test_bf16_kernels_grow_with_the_lengths_a_run_can_meet(tiny_llama_dir, data_files):
    from adapterkit.memory.calibration import ONEDNN_BASE_MIB, ONEDNN_PRIMITIVE_MIB

    # The tiny Llama's linears: 32 -> 32 (q, o), 32 -> 16 (k, v), 32 -> 64 (gate, up), 64 -> 32 (down), and its LM
    # head 32 -> vocab: 5 frozen shapes, 2 primitives each (forward, input gradient). LoRA r=4 on every linear:
    # A is 32 -> 4 or 64 -> 4, B is 4 -> 32, 4 -> 16 or 4 -> 64: 5 trained shapes, 3 primitives each.
    per_length = 5 * 2 + 5 * 3
    for max_length, lengths in ((256, 16), (64, 4)):
        # padding-free passes of up to tokens_per_pass tokens; padded batches are padded to their longest row
        for padding_free in (True, False):
            got = _kernels(tiny_llama_dir, data_files, max_length=max_length, padding_free=padding_free,
                           tokens_per_pass=max_length)
            assert got == (lengths, (ONEDNN_BASE_MIB + ONEDNN_PRIMITIVE_MIB * per_length * lengths) * MIB), padding_free
    assert _kernels(tiny_llama_dir, data_files, precision="fp32")[1] == 0.0  # MKL's sgemm keeps nothing per shape


def test_full_fine_tuning_plans_the_weight_gradients_primitives(tiny_llama_dir, data_files):
    from adapterkit.memory.calibration import ONEDNN_BASE_MIB, ONEDNN_PRIMITIVE_MIB

    lengths, term = _kernels(tiny_llama_dir, data_files, method="full", max_length=64)
    assert term == pytest.approx((ONEDNN_BASE_MIB + ONEDNN_PRIMITIVE_MIB * 5 * 3 * lengths) * MIB)


def test_packed_lm_blocks_meet_one_length(tiny_llama_dir, data_files):
    files = {"lm_train": data_files["classification_train"], "lm_eval": data_files["classification_eval"]}
    lengths, term = _kernels(tiny_llama_dir, files, task="lm", max_length=64)
    chat_lengths, chat_term = _kernels(tiny_llama_dir, data_files, max_length=64, tokens_per_pass=64)
    assert (lengths, chat_lengths) == (1, 4)
    assert 0 < term < chat_term
