"""A sequence classifier's loss is a mean over examples: batch 4 x 2 accumulation steps trains like batch 8.
(transformers' Trainer read the model's **kwargs as "normalises by num_items_in_batch" and skipped the division
by the accumulation steps, and multiplied the loss by the number of ranks; the task says it does not.)"""

from __future__ import annotations

import pytest

from adapterkit.recipe import recipe_from_dict
from tests.conftest import tiny_recipe


@pytest.mark.integration
def test_accumulation_equals_the_larger_batch(tiny_bert_dir, data_files, tmp_path):
    from safetensors.torch import load_file

    from adapterkit.api import run

    results = {}
    for batch, accum in ((8, 1), (4, 2)):
        recipe = recipe_from_dict(tiny_recipe("classification", "lora", tiny_bert_dir, data_files, model={"dropout": 0.0},
                                              train={"max_steps": 2, "batch_size": batch, "grad_accum": accum}))
        result = run(recipe, output=tmp_path / f"b{batch}")
        results[batch] = (result.info["train_loss"], load_file(result.artifact_dir / "adapter_model.safetensors"))
    (loss_a, wa), (loss_b, wb) = results[8], results[4]
    assert abs(loss_a - loss_b) < 1e-5
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5
