"""Preference tuning of a causal LM with trl: DPO and its loss variants, ORPO, SimPO, KTO (``task.loss``).

Eval: the loss on held-out rows, the reward accuracy (share of held-out pairs whose chosen answer gets the
higher implicit reward) and margin where the trainer defines them (not KTO, whose rows are unpaired), and a few
greedy answers to held-out prompts written to ``samples.jsonl`` beside the preferred answer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ...data.sources import load_train_eval
from ...training import shape_multiple, trainable_in_fp32, training_kwargs
from ..base import TaskData, TaskOptions
from ..causal import decoder_only_reason
from ..rows import checked_rows, warn_shared
from .rows import check_row, kept, normalised, without_repeated_prompts
from .trainers import LOSSES, ROUNDS_LENGTHS, build, loss_record, warn_cut

log = logging.getLogger("adapterkit")
Loss = Literal[LOSSES]  # type: ignore[valid-type]


class PreferenceOptions(TaskOptions):
    loss: Loss = Field("dpo", description="dpo (sigmoid), ipo, hinge, robust, ... (trl's DPO loss types), orpo, "
                                          "simpo, kto")
    beta: float | None = Field(None, gt=0, description="strength of the pull towards the reference (DPO family, "
                                                       "KTO) or of the odds-ratio term (ORPO); None: trl's default")
    max_length: int = Field(256, gt=0, description="prompt + answer tokens; longer rows are cut at the end")
    num_samples: int = Field(3, ge=0, description="answers generated for held-out prompts after training")
    max_new_tokens: int = Field(48, gt=0)


class PreferenceTask:
    name = "preference"
    summary = "preference tuning (DPO/IPO/ORPO/SimPO/KTO) of a causal LM; columns prompt,chosen,rejected (KTO: " \
              "prompt,completion,label)"
    options = PreferenceOptions
    auto_class = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    primary_metric = "eval_loss"  # defined for every loss; reward accuracy is not (KTO)
    greater_is_better = False

    def load_data(self, plan) -> TaskData:
        """Checked rows (lists of dicts): their final shape depends on the tokenizer's chat template."""
        opts, on_error = plan.task_options, plan.recipe.data.on_error
        unpaired_ok = loss_record(opts.loss).unpaired
        train_rows, eval_rows = load_train_eval(plan.recipe.data, plan.where)
        warn_shared(train_rows, eval_rows)
        train_rows, skipped = checked_rows(train_rows, lambda r: check_row(r, unpaired_ok), on_error, "train")
        eval_rows, skipped_eval = checked_rows(eval_rows, lambda r: check_row(r, unpaired_ok), on_error, "eval")
        train_rows, eval_rows = without_repeated_prompts(train_rows, "train"), without_repeated_prompts(eval_rows, "eval")
        return TaskData(train_rows, eval_rows, None, skipped + skipped_eval)

    def model_kwargs(self, data: TaskData) -> dict[str, Any]:
        return {}

    def check_model(self, options: PreferenceOptions, config) -> str | None:
        return decoder_only_reason(self.name, config)

    def memory_needs(self, plan) -> dict[str, Any]:
        """For the planner: rows per example in a pass (a pair's chosen and rejected run in one batch) and
        whether a frozen copy of the base is held as the reference (methods that cannot switch themselves off);
        ORPO's and SimPO's batches are not rounded in length."""
        loss = loss_record(plan.task_options.loss)
        return {"rows_per_example": 1 if loss.unpaired else 2,
                "frozen_reference": loss.uses_reference and not plan.method.can_disable,
                "unrounded_lengths": loss.name not in ROUNDS_LENGTHS}

    def build_trainer(self, plan, model, tokenizer, data: TaskData, run_dir: Path):
        from datasets import Dataset

        opts = plan.task_options
        loss = loss_record(opts.loss)
        chat = bool(getattr(tokenizer, "chat_template", None))

        def table(rows):
            return Dataset.from_dict(normalised(rows, chat, loss.unpaired))

        evaluation = table(data.eval)
        train = evaluation if data.train is None else table(data.train)  # trl requires a train set; never trained on
        ref_model = None
        if loss.uses_reference and not plan.method.can_disable:
            ref_model = frozen_reference(plan, tokenizer)
        args = training_kwargs(plan, run_dir)
        args["train_sampling_strategy"] = "random"  # rows are pairs of token lists: no length to group by
        trainer = build(loss, args, opts.beta, opts.max_length, model, ref_model, tokenizer, train, evaluation,
                        pad_multiple=shape_multiple(plan.hardware))  # bf16 on a CPU: a bounded set of shapes
        if data.train is not None:
            warn_cut(trainer.train_dataset, len(train), opts.max_length, "train")
            data.train = kept(data.train, trainer.train_dataset)
        warn_cut(trainer.eval_dataset, len(evaluation), opts.max_length, "eval")
        data.eval = kept(data.eval, trainer.eval_dataset)
        if data.train is None:
            restore_reference(trainer.model, plan.recipe.model.adapter)
        trainable_in_fp32(trainer.model)  # trl casts QLoRA adapters to bf16 (see the function)
        # No fp32 adapter sums under bf16 (methods/fp32_adapter_sum.py): on chat_dpo they gave no gain for +734 MiB of
        # peak RSS (eval loss 0.3558 with, 0.3533 without, fp32 0.3542; docs/defaults.md).
        return trainer

    def evaluate(self, plan, trainer, data: TaskData, run_dir: Path) -> dict[str, Any]:
        raw = trainer.evaluate()
        metrics = {k: float(v) for k, v in raw.items() if isinstance(v, (int, float))}
        for trl_key, key in (("eval_rewards/accuracies", "eval_reward_accuracy"),
                             ("eval_rewards/margins", "eval_reward_margin")):
            if trl_key in metrics:
                metrics[key] = metrics[trl_key]
        opts = plan.task_options
        samples = generate_samples(trainer.model, trainer.processing_class, data.eval[:opts.num_samples],
                                   opts.max_new_tokens)
        if samples:
            with (run_dir / "samples.jsonl").open("w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
        return metrics

    def generate(self, model, tokenizer, messages: list[dict], max_new_tokens: int) -> str:
        from ..chat import generate

        return generate(model, tokenizer, messages, max_new_tokens)


def frozen_reference(plan, tokenizer):
    """A second copy of the base model, frozen, for methods that cannot switch their trained part off."""
    from ...loading import load_model

    log.info("preference: method %r keeps a frozen copy of the base model as the reference", plan.method.name)
    ref = load_model(plan, tokenizer)
    ref.requires_grad_(False)
    return ref.eval()


def restore_reference(model, start_adapter: str | None) -> None:
    """Evaluating a trained peft model: trl's frozen "ref" copy of the loaded adapter would make the policy its
    own reference (every reward 0). The reference is where training started: the base with the adapter off,
    or the adapter that ``model.adapter`` continued."""
    if "ref" not in (getattr(model, "peft_config", None) or {}):
        return
    model.delete_adapter("ref")
    if start_adapter:
        model.load_adapter(start_adapter, adapter_name="ref", is_trainable=False)


def generate_samples(model, tokenizer, rows: list[dict], max_new_tokens: int) -> list[dict]:
    """Greedy answers to held-out prompts, beside the preferred answer (or the completion and its label)."""
    import torch

    from .rows import normalised as shape

    chat = bool(getattr(tokenizer, "chat_template", None))
    samples = []
    for row in rows:
        if "chosen" not in row and "completion" not in row:
            continue
        one = shape([row], chat, unpair=False) if "chosen" in row else shape([row], chat, unpair=True)
        prompt = one["prompt"][0]
        if chat:
            from ..chat import generate

            answer = generate(model, tokenizer, prompt, max_new_tokens)
        else:
            ids = tokenizer(prompt, return_tensors="pt").to(model.device)
            model.eval()
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
            answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        reference = one["chosen"][0] if "chosen" in one else one["completion"][0]
        samples.append({"prompt": prompt, "preferred": reference, "generated": answer,
                        **({"label": one["label"][0]} if "label" in one else {})})
    return samples


TASK = PreferenceTask()
