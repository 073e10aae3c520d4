"""Continued pre-training of a causal LM on plain text: every token is a target.

Data: a ``text`` column (name configurable), or ``.txt`` files read as plain text, one document per
paragraph (blank lines between paragraphs). Documents are tokenized, each closed with the end-of-sequence
token, concatenated and cut into blocks of ``task.max_length`` tokens (packing, as transformers' run_clm
example does: no padding, the last partial block of each 1,000 documents dropped). Eval: loss and perplexity
on the eval text, packed the same way.
"""

from __future__ import annotations

import math
from itertools import chain
from pathlib import Path
from typing import Any

from pydantic import Field

from ..data.files import read_text
from ..data.sources import load_rows, load_train_eval, locate
from ..training import training_kwargs
from .base import TaskData, TaskOptions
from .causal import decoder_only_reason
from .rows import checked_rows, non_empty_string, warn_shared


class LmOptions(TaskOptions):
    text_column: str = "text"
    max_length: int = Field(256, gt=0, description="tokens per packed block")


def text_file_rows(path: Path) -> list[dict]:
    """A plain-text file's paragraphs (separated by blank lines), each a row with its first line's number."""
    rows, lines, first = [], [], 0
    for number, line in enumerate([*read_text(path).splitlines(), ""], start=1):
        if line.strip():
            first = first or number
            lines.append(line)
        elif lines:
            rows.append({"text": "\n".join(lines), "_where": f"{path}:{first}"})
            lines, first = [], 0
    return rows


def text_rows(spec: str, *, recipe_source: str, key: str, split: str, on_error: str = "fail") -> list[dict]:
    """``data.sources.load_rows``, with ``.txt`` files read as plain text (``text_file_rows``)."""
    found = locate(spec, recipe_source=recipe_source, key=key)
    if isinstance(found, Path) and found.suffix.lower() == ".txt":
        return text_file_rows(found)
    return load_rows(spec, recipe_source=recipe_source, key=key, split=split, on_error=on_error)


def packed(dataset, tokenizer, block: int):
    """``input_ids`` = ``labels`` blocks of ``block`` tokens from the documents back to back, each closed by
    the end-of-sequence token; a split shorter than one block is one shorter block."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []

    def tokenize(batch):
        return {"input_ids": [ids + eos for ids in tokenizer(batch["text"])["input_ids"]]}

    def group(batch):
        flat = list(chain.from_iterable(batch["input_ids"]))
        blocks = [flat[i:i + block] for i in range(0, len(flat) // block * block, block)] or [flat]
        return {"input_ids": blocks, "labels": [list(b) for b in blocks]}

    tokens = dataset.map(tokenize, batched=True, remove_columns=dataset.column_names)
    return tokens.map(group, batched=True, batch_size=1000)


class LmTask:
    name = "lm"
    summary = "continued pre-training of a causal LM on plain text, packed blocks; data column text (or .txt)"
    options = LmOptions
    auto_class = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    primary_metric = "eval_loss"
    greater_is_better = False

    def load_data(self, plan) -> TaskData:
        from datasets import Dataset

        opts, on_error = plan.task_options, plan.recipe.data.on_error
        train_rows, eval_rows = load_train_eval(plan.recipe.data, plan.where, read=text_rows)
        warn_shared(train_rows, eval_rows)

        def check(row):
            return None if non_empty_string(row.get(opts.text_column)) else \
                f"column {opts.text_column!r} is missing or empty"

        train_rows, skipped = checked_rows(train_rows, check, on_error, "train")
        eval_rows, skipped_eval = checked_rows(eval_rows, check, on_error, "eval")

        def table(rows):
            return Dataset.from_dict({"text": [r[opts.text_column] for r in rows]})

        return TaskData(table(train_rows), table(eval_rows), None, skipped + skipped_eval)

    def memory_needs(self, plan) -> dict[str, Any]:
        """For the planner: transformers' Trainer takes the model's loss and computes nothing else from the logits;
        every block has ``max_length`` tokens."""
        return {"logit_metrics": False, "fixed_length": True}

    def model_kwargs(self, data: TaskData) -> dict[str, Any]:
        return {}

    def check_model(self, options: LmOptions, config) -> str | None:
        return decoder_only_reason(self.name, config, " (use task 'seq2seq')")

    def build_trainer(self, plan, model, tokenizer, data: TaskData, run_dir: Path):
        from transformers import Trainer, TrainingArguments, default_data_collator

        block = plan.task_options.max_length
        kwargs = training_kwargs(plan, run_dir)
        kwargs["train_sampling_strategy"] = "random"  # every block is max_length long: nothing to group
        # no padding in a packed block; "non_padding" would drop every end-of-sequence token that is also the pad
        kwargs["include_num_input_tokens_seen"] = "all"
        # No fp32 adapter sums under bf16 (methods/fp32_adapter_sum.py): measured on lm_lora they cost 7% of the speed and
        # 266 MiB of peak RSS for no gain (eval loss 4.1132 with, 4.1120 without, fp32 4.1103; docs/defaults.md).
        return Trainer(
            model=model,
            args=TrainingArguments(**kwargs),
            train_dataset=None if data.train is None else packed(data.train, tokenizer, block),
            eval_dataset=packed(data.eval, tokenizer, block),
            processing_class=tokenizer,
            data_collator=default_data_collator,
        )

    def evaluate(self, plan, trainer, data: TaskData, run_dir: Path) -> dict[str, Any]:
        metrics = {k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, (int, float))}
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
        return metrics

    def generate(self, model, tokenizer, messages: list[dict], max_new_tokens: int) -> str:
        """Greedy continuation of the last user message's text, no chat template (``adapterkit generate``)."""
        import torch

        text = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        batch = tokenizer(text, return_tensors="pt").to(model.device)
        model.eval()
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)


TASK = LmTask()
