"""Per-batch-padded bf16 recipes evaluate in the train batch's size: each new batch shape costs bf16 memory
(oneDNN's per-shape kernels and a heap that grows for sizes it has not served), so an eval batch of another
size than training's added ~370 MiB to sentiment LoRA's peak RSS (docs/defaults.md, "Throughput and memory")."""

from __future__ import annotations

from conftest import REPO

from adapterkit import load_recipe
from adapterkit.plan import make_plan
from adapterkit.training import training_kwargs


def test_sentiment_lora_evaluates_in_the_train_batch(tmp_path):
    plan = make_plan(load_recipe(REPO / "recipes" / "sentiment_lora.toml"))
    kwargs = training_kwargs(plan, tmp_path / "run")
    assert kwargs["per_device_eval_batch_size"] == kwargs["per_device_train_batch_size"] == 32
