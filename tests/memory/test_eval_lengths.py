"""Chat's eval phase is planned from the eval split's real lengths, read before any weight is loaded."""

from __future__ import annotations

from conftest import tiny_recipe

from adapterkit.recipe import recipe_from_dict


def test_chat_eval_phase_reads_the_eval_split_not_weights(tiny_llama_dir, data_files, monkeypatch):
    import transformers

    from adapterkit import loading
    from adapterkit.memory.verdict import assess, shape_of
    from adapterkit.plan import make_plan
    from adapterkit.preflight import preflight

    def no_weights(*args, **kwargs):
        raise AssertionError("the preflight loaded weights")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    recipe = tiny_recipe("chat", "lora", tiny_llama_dir, data_files, train={"batch_size": 8})
    recipe["task"].update(max_length=256)
    plan = make_plan(recipe_from_dict(recipe))
    tokens, scored = plan.task.eval_batch_lengths(plan)
    # 8 chatterbot conversations in one eval batch of 16: far below 16 x 256, and about a third scored
    assert 0 < scored < tokens < 16 * 256 / 4
    shape = shape_of(plan, loading.load_config(plan.recipe.model, plan.where))
    bound, real = assess(plan, shape).estimate, assess(plan, shape, (tokens, scored)).estimate
    assert real.eval < bound.eval and real.train == bound.train
    fit = preflight(plan.recipe, memory="assess").fit  # the preflight uses the real lengths, loading no weight
    assert fit.estimate.eval == real.eval

    recipe["task"]["padding_free"] = False  # padded eval batches: the worst case stands
    padded = make_plan(recipe_from_dict(recipe))
    assert padded.task.eval_batch_lengths(padded) is None
