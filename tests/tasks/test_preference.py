"""The preference task: DPO's loss against a computation from its definition with the reference = the disabled
adapter, a few steps of DPO / ORPO / KTO on the tiny Llama, the planner's reference copy, and bad rows."""

from __future__ import annotations

import json
import math

import pytest
from conftest import tiny_recipe

from adapterkit import api, results
from adapterkit.data.builtin import BUILTIN_DATASETS
from adapterkit.errors import UserError
from adapterkit.plan import make_plan
from adapterkit.recipe import recipe_from_dict


def _write(path, rows):
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_where"}) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    rows = BUILTIN_DATASETS["chatterbot-pairs"].rows()
    folder = tmp_path_factory.mktemp("pairs")
    return {"preference_train": _write(folder / "train.jsonl", rows[:24]),
            "preference_eval": _write(folder / "eval.jsonl", rows[24:30])}


def _recipe(model_dir, files, method="lora", **options):
    data = tiny_recipe("preference", method, model_dir, files, train={"max_steps": 2, "batch_size": 4})
    data["task"].update({"num_samples": 1, "max_new_tokens": 4, **options})
    return recipe_from_dict(data, name=data["name"])


def test_demo_pairs_reject_another_conversations_answer():
    rows = BUILTIN_DATASETS["chatterbot-pairs"].rows()
    chats = BUILTIN_DATASETS["chatterbot"].rows()
    assert len(rows) == len(chats)
    for pair, chat in zip(rows[:200], chats[:200]):
        assert pair["prompt"] + pair["chosen"] == chat["messages"]
        assert pair["rejected"][0]["content"] != pair["chosen"][0]["content"]


def test_dpo_loss_equals_its_definition_with_the_adapter_disabled(tiny_llama_dir, pair_files):
    import torch
    import torch.nn.functional as F
    from transformers import AutoTokenizer

    plan = make_plan(_recipe(tiny_llama_dir, pair_files, beta=0.5))
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    data = plan.task.load_data(plan)
    model = api.prepare_model(plan, tokenizer, data)
    trainer = plan.task.build_trainer(plan, model, tokenizer, data, _run_dir(plan))
    torch.manual_seed(1)
    with torch.no_grad():  # a trained adapter: the policy now differs from the base
        for name, param in model.named_parameters():
            if ".default." in name:
                param.add_(torch.randn_like(param) * 0.5)
    batch = next(iter(trainer.get_eval_dataloader()))
    loss = trainer.compute_loss(trainer.model, batch)

    def answer_logps(m):
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        logps = torch.log_softmax(logits[:, :-1], -1).gather(2, batch["input_ids"][:, 1:, None])[..., 0]
        return (logps * batch["completion_mask"][:, 1:]).sum(1).chunk(2)  # the batch is [chosen; rejected]

    with torch.no_grad():
        chosen, rejected = answer_logps(model)
        with model.disable_adapter():
            ref_chosen, ref_rejected = answer_logps(model)
    expected = -F.logsigmoid(0.5 * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()
    assert (chosen - ref_chosen).abs().max() > 1e-3  # the reference is not the policy
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-4, atol=1e-5)


def _run_dir(plan):
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp())


@pytest.mark.integration
@pytest.mark.parametrize("loss", ["dpo", "orpo", "simpo", "kto"])
def test_preference_trains_a_few_steps(loss, tiny_llama_dir, pair_files, tmp_path):
    import warnings

    filters = list(warnings.filters)
    result = api.run(_recipe(tiny_llama_dir, pair_files, loss=loss), output=tmp_path / "run")
    assert warnings.filters == filters  # a library user's process keeps its warning filters
    metrics, run_dir = result.metrics, result.run_dir
    assert result.info["steps"] == 2 and result.info["task"] == "preference"
    assert result.info["train_tokens"] > 0  # ORPO's and SimPO's paired batches have no input_ids: were counted 0
    assert math.isfinite(metrics["eval_loss"])
    if loss != "kto":  # KTO's rows are unpaired: no pairwise accuracy
        assert 0 <= metrics["eval_reward_accuracy"] <= 1
    assert (run_dir / "samples.jsonl").read_text().strip()
    adapter = run_dir / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and not (adapter / "ref").exists()
    assert results.check(results.from_run(run_dir, method="lora", seed=0)) == []  # compare reads it
    if loss == "dpo":  # re-evaluated, the reference is again the base (not the trained adapter itself)
        again = api.evaluate_run(run_dir)
        assert again["eval_reward_accuracy"] == metrics["eval_reward_accuracy"]
        assert again["eval_loss"] == pytest.approx(metrics["eval_loss"], abs=1e-4)


def test_planner_counts_the_reference_copy_for_full_only(tiny_llama_dir, pair_files):
    from adapterkit.memory.verdict import assess, shape_of, workload
    from adapterkit.preflight import preflight

    fits = {}
    for method in ("lora", "full"):
        checked = preflight(_recipe(tiny_llama_dir, pair_files, method=method), memory="assess")
        fits[method] = assess(checked.plan, shape_of(checked.plan, checked.model_config))
        assert workload(checked.plan).batch_size == 2 * 4  # chosen and rejected of 4 pairs
    assert fits["lora"].estimate.terms["reference model"] == 0
    full = fits["full"].estimate
    assert full.terms["reference model"] == full.terms["weights"] > 0


def test_bad_rows_name_their_line(tiny_llama_dir, pair_files, tmp_path):
    rows = [json.loads(line) for line in pair_files["preference_train"].read_text().splitlines()]
    bad = tmp_path / "bad.jsonl"
    _write(bad, rows[:3] + [{"prompt": "hi", "chosen": "hello"}] + rows[3:8])
    files = {**pair_files, "preference_train": bad}
    plan = make_plan(_recipe(tiny_llama_dir, files))
    with pytest.raises(UserError) as err:
        plan.task.load_data(plan)
    assert f"{bad}:4" in str(err.value) and "rejected" in str(err.value)
    kto_row = tmp_path / "kto.jsonl"
    _write(kto_row, [{"prompt": "hi", "completion": "hello", "label": True}] * 3)
    plan = make_plan(_recipe(tiny_llama_dir, {**pair_files, "preference_train": kto_row}))
    with pytest.raises(UserError, match=r'kto.jsonl:1.*task.loss = "kto"'):
        plan.task.load_data(plan)
    skip = make_plan(_recipe(tiny_llama_dir, files).model_copy(
        update={"data": _recipe(tiny_llama_dir, files).data.model_copy(update={"on_error": "skip"})}))
    data = skip.task.load_data(skip)
    assert data.skipped_rows == 1 and len(data.train) == 8


def test_rows_take_one_shape():
    from adapterkit.tasks.preference.rows import check_row, normalised

    kto = [{"prompt": "hi", "completion": "hello", "label": True},
           {"prompt": [{"role": "user", "content": "hi"}], "chosen": "hello", "rejected": "bye"}]
    assert all(check_row(r, unpaired_ok=True) is None for r in kto)
    columns = normalised(kto, chat=True, unpair=True)
    assert columns["label"] == [True, True, False] and columns["row"] == [0, 1, 1]  # the source row of each
    assert columns["completion"][2] == [{"role": "assistant", "content": "bye"}]
    implicit = {"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "bye"}]}
    assert check_row(implicit, unpaired_ok=False) is None
    text = normalised([implicit], chat=False, unpair=False)
    assert text == {"prompt": ["hi"], "chosen": ["hello"], "rejected": ["bye"], "row": [0]}
    assert "label" in check_row({"prompt": "a", "completion": "b", "label": "yes"}, unpaired_ok=True)
