"""Planner terms that depend on precision and on how the loss scores the LM head: bf16 on a CPU plans the rounded
lengths the run pads to (training.shape_multiple), and trl's fused LM head (padded chat batches) is planned as one
logits tile, not the whole logits; the lm task's Trainer (the model's loss only) fewer logits-sized tensors than trl's
metrics need; glibc's heap slack does not halve in bf16."""

from __future__ import annotations

import pytest
from conftest import REPO, tiny_recipe

from adapterkit.recipe import recipe_from_dict

pytestmark = pytest.mark.usefixtures("cpu_kind")  # constants per kind of CPU: plan as the AMD EPYC


def _plan(tiny_llama_dir, data_files, precision, **task):
    from adapterkit.plan import make_plan

    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, data_files, train={"batch_size": 8},
                         hardware={"precision": precision})
    recipe["task"].update(task)
    return make_plan(recipe_from_dict(recipe))


def test_bf16_on_a_cpu_plans_the_rounded_lengths(tiny_llama_dir, data_files):
    from adapterkit.memory.verdict import workload
    from adapterkit.training import SHAPE_MULTIPLE

    odd = 5 * SHAPE_MULTIPLE + 3  # not a multiple: bf16 batches of it are padded to 6 x SHAPE_MULTIPLE
    for precision, seq in (("fp32", odd), ("bf16", 6 * SHAPE_MULTIPLE)):
        padded = workload(_plan(tiny_llama_dir, data_files, precision, max_length=odd, padding_free=False))
        assert (padded.batch_size, padded.seq_len) == (8, seq), precision
        passes = workload(_plan(tiny_llama_dir, data_files, precision, max_length=odd, tokens_per_pass=odd))
        assert (passes.batch_size, passes.seq_len) == (1, seq), precision


def test_padded_chat_plans_one_fused_lm_head_tile(tiny_llama_dir, data_files):
    from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    from adapterkit import loading
    from adapterkit.memory.estimate import FUSED_HEAD_COPIES, LOGIT_COPIES
    from adapterkit.memory.verdict import assess, shape_of, workload

    padded = _plan(tiny_llama_dir, data_files, "fp32", max_length=256, padding_free=False)
    free = _plan(tiny_llama_dir, data_files, "fp32", max_length=256)
    assert workload(padded).lm_head_tile == (TOKEN_CHUNK_SIZE, _CHUNKED_LOGPROB_CHUNK_SIZE)
    assert workload(free).lm_head_tile is None  # the task's own loss builds the scored positions' logits

    shape = shape_of(padded, loading.load_config(padded.recipe.model, padded.recipe.source))
    tokens = 8 * 256
    rows, cols = min(tokens, TOKEN_CHUNK_SIZE), min(shape.vocab, _CHUNKED_LOGPROB_CHUNK_SIZE)
    logits = assess(padded, shape).estimate.terms["logits"]
    assert logits == rows * cols * (4 + FUSED_HEAD_COPIES * 4)
    assert assess(free, shape).estimate.terms["logits"] == 256 * shape.vocab * (4 + LOGIT_COPIES * 4)


def test_lm_task_plans_the_model_loss_fp32_tensors_not_the_whole_logits_and_metrics(tiny_llama_dir, data_files):
    """The lm task's Trainer only takes the model's loss (transformers' ForCausalLMLoss): its peak is log-softmax's
    backward, CE_LOGIT_COPIES fp32 logits-sized tensors in either precision, not the logits plus trl's metrics."""
    from adapterkit import loading
    from adapterkit.memory.estimate import CE_LOGIT_COPIES, LOGIT_COPIES
    from adapterkit.memory.verdict import assess, shape_of, workload
    from adapterkit.plan import make_plan

    files = {"lm_train": data_files["classification_train"], "lm_eval": data_files["classification_eval"]}
    for precision in ("fp32", "bf16"):
        recipe = tiny_recipe("lm", "lora", tiny_llama_dir, files, train={"batch_size": 4},
                             hardware={"precision": precision})
        recipe["task"]["max_length"] = 64
        plan = make_plan(recipe_from_dict(recipe))
        assert workload(plan).logit_metrics is False
        shape = shape_of(plan, loading.load_config(plan.recipe.model, plan.recipe.source))
        logits = assess(plan, shape).estimate.terms["logits"]
        assert logits == 4 * 64 * shape.vocab * CE_LOGIT_COPIES * 4, precision
        assert logits < 4 * 64 * shape.vocab * (2 + LOGIT_COPIES * 4)


def test_heap_slack_is_sized_from_fp32_activations_in_bf16():
    """glibc keeps the half-size bf16 blocks resident too: bf16 halves prompt tuning's activations, not its heap
    slack (benchmarks/planner: sentiment_prompt bf16 measured 1,130 MiB, 0.896 with slack from bf16 activations)."""
    from adapterkit import loading
    from adapterkit.memory.verdict import assess, shape_of
    from adapterkit.plan import load_recipe, make_plan

    def terms(precision):
        recipe = load_recipe(REPO / "recipes" / "sentiment_prompt.toml", [f"hardware.precision={precision}",
                                                                          "hardware.profile=cpu-2c-24g"])
        plan = make_plan(recipe)
        return assess(plan, shape_of(plan, loading.load_config(recipe.model, recipe.source))).estimate.terms

    fp32, bf16 = terms("fp32"), terms("bf16")
    assert bf16["activations"] < 0.6 * fp32["activations"]
    assert bf16["heap slack"] == fp32["heap slack"] > 0


def test_chat_plans_the_fp32_adapter_sums_it_adds_under_bf16(tiny_llama_dir, data_files):
    """The chat task adds LoRA's update in fp32 under bf16 autocast (methods/fp32_adapter_sum.py): the base output's
    fp32 copy and the fp32 sum are freed temporaries of every adapted layer, planned as heap slack (CPU)."""
    from adapterkit import loading
    from adapterkit.memory.calibration import ADAPTER_TEMP_BYTES, FP32_SUM_TEMP_BYTES, FUSED_SUM_TEMP_BYTES
    from adapterkit.memory.verdict import assess, shape_of, workload

    fp32, bf16 = (_plan(tiny_llama_dir, data_files, p, max_length=256, padding_free=False) for p in ("fp32", "bf16"))
    assert not workload(fp32).fp32_adapter_sums and workload(bf16).fp32_adapter_sums
    shape = shape_of(bf16, loading.load_config(bf16.recipe.model, bf16.recipe.source))
    est = assess(bf16, shape).estimate
    # fp32 takes LoRA's sum in one addmm (methods/fused_lora_sum.py): only the base output is freed per layer
    generic = assess(fp32, shape).estimate.terms["heap slack"] - FUSED_SUM_TEMP_BYTES * 8 * 256 * \
        bf16.method.footprint(bf16.method_options, shape).branch_out_features
    branch = est.terms["heap slack"] - generic
    per_out = (ADAPTER_TEMP_BYTES["bf16"] + FP32_SUM_TEMP_BYTES)
    assert branch == pytest.approx(per_out * 8 * 256 * bf16.method.footprint(bf16.method_options, shape).branch_out_features)
