"""Sequence-to-sequence generation (summarization, translation, question answering) with an encoder-decoder
(T5, BART, mT5 ...) through transformers' ``AutoModelForSeq2SeqLM`` and ``Seq2SeqTrainer``.

Data: ``source`` + ``target`` strings (column names configurable). Eval: loss and perplexity on the targets,
and greedy answers to every eval source (``Seq2SeqTrainer.predict`` with ``predict_with_generate``, capped by
``task.max_new_tokens``) scored against the targets by ``task.generate_eval`` (``tasks.generation``); the answers
go to ``generations.jsonl``, the first ``num_samples`` also to ``samples.jsonl``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import Field

from ..data.sources import load_train_eval
from ..training import shape_multiple, training_kwargs
from .base import TaskData, TaskOptions
from .generation import Score, generate_eval_field, scores, write_generations
from .rows import checked_rows, clip_pieces, non_empty_string, warn_shared, warn_truncated


class Seq2SeqOptions(TaskOptions):
    source_column: str = "source"
    target_column: str = "target"
    source_prefix: str = Field("", description='put before every source, e.g. "summarize: " for T5')
    max_length: int = Field(256, gt=0, description="source tokens kept")
    max_target_length: int = Field(128, gt=0, description="target tokens kept")
    max_new_tokens: int = Field(64, gt=0, description="the most tokens a generated answer has")
    num_samples: int = Field(3, ge=0, description="answers also written to samples.jsonl")
    generate_eval: list[Score] = generate_eval_field(["rouge", "bleu"])


class Seq2SeqTask:
    name = "seq2seq"
    summary = "encoder-decoder generation (summarize, translate, answer); data columns source, target"
    options = Seq2SeqOptions
    auto_class = "AutoModelForSeq2SeqLM"
    peft_task_type = "SEQ_2_SEQ_LM"
    primary_metric = "eval_loss"
    greater_is_better = False

    def load_data(self, plan) -> TaskData:
        from datasets import Dataset

        opts, on_error = plan.task_options, plan.recipe.data.on_error
        train_rows, eval_rows = load_train_eval(plan.recipe.data, plan.where)
        warn_shared(train_rows, eval_rows)

        def check(row):
            for column in (opts.source_column, opts.target_column):
                if not non_empty_string(row.get(column)):
                    return f"column {column!r} is missing or empty"
            return None

        train_rows, skipped = checked_rows(train_rows, check, on_error, "train")
        eval_rows, skipped_eval = checked_rows(eval_rows, check, on_error, "eval")

        def table(rows):
            return Dataset.from_dict({
                "source": [clip_pieces([r[opts.source_column]], opts.max_length)[0] for r in rows],
                "target": [clip_pieces([r[opts.target_column]], opts.max_target_length)[0] for r in rows]})

        return TaskData(table(train_rows), table(eval_rows), None, skipped + skipped_eval)

    def model_kwargs(self, data: TaskData) -> dict[str, Any]:
        return {}

    def check_model(self, options: Seq2SeqOptions, config) -> str | None:
        if not getattr(config, "is_encoder_decoder", False):
            return (f"task 'seq2seq' needs an encoder-decoder model (T5, BART, mT5 ...); model type "
                    f"{config.model_type!r} is not one (for a decoder-only model use task 'chat')")
        return None

    def tokenize(self, dataset, tokenizer, opts: Seq2SeqOptions):
        def encode(batch):
            enc = tokenizer([opts.source_prefix + s for s in batch["source"]], truncation=True,
                            max_length=opts.max_length)
            enc["labels"] = tokenizer(text_target=batch["target"], truncation=True,
                                      max_length=opts.max_target_length)["input_ids"]
            return enc

        tokens = warn_truncated(dataset.map(encode, batched=True, remove_columns=["source", "target"]), opts.max_length)
        return warn_truncated(tokens, opts.max_target_length, "labels", "task.max_target_length", "targets")

    def build_trainer(self, plan, model, tokenizer, data: TaskData, run_dir: Path):
        from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

        opts = plan.task_options
        kwargs = training_kwargs(plan, run_dir)
        # Under "group_by_length" the Trainer also reorders eval batches by length; the answers must come back in
        # data.eval's order, beside their references (a test caught answers swapped between examples)
        kwargs["train_sampling_strategy"] = "random"
        args = Seq2SeqTrainingArguments(**kwargs, predict_with_generate=True, generation_num_beams=1)
        return Seq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=None if data.train is None else self.tokenize(data.train, tokenizer, opts),
            eval_dataset=self.tokenize(data.eval, tokenizer, opts),  # in data.eval's order: answers line up
            processing_class=tokenizer,
            # bf16/fp16 on a CPU: lengths rounded up (training.shape_multiple), a bounded set of oneDNN shapes
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, pad_to_multiple_of=shape_multiple(plan.hardware)),
        )

    def evaluate(self, plan, trainer, data: TaskData, run_dir: Path) -> dict[str, Any]:
        import numpy as np

        opts, tokenizer = plan.task_options, trainer.processing_class
        output = trainer.predict(trainer.eval_dataset, max_new_tokens=opts.max_new_tokens, num_beams=1,
                                 do_sample=False)
        ids = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        ids = np.where(ids < 0, tokenizer.pad_token_id, ids)  # the eval loop pads batches with -100
        answers = [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        sources, references = list(data.eval["source"]), list(data.eval["target"])
        metrics = {"eval_loss": float(output.metrics.get("test_loss", float("nan")))}
        metrics["eval_perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
        metrics.update(scores(answers, references, opts.generate_eval))
        rows = [{"source": s, "reference": r, "generated": a} for s, r, a in zip(sources, references, answers)]
        if opts.generate_eval:
            write_generations(run_dir, rows)
        if opts.num_samples:
            run_dir.mkdir(parents=True, exist_ok=True)
            with (run_dir / "samples.jsonl").open("w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows[:opts.num_samples])
        return metrics

    def generate(self, model, tokenizer, messages: list[dict], max_new_tokens: int) -> str:
        """Greedy answer to the last user message taken as the source (``adapterkit generate``)."""
        import torch

        source = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        batch = tokenizer(source, return_tensors="pt").to(model.device)
        model.eval()
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        return tokenizer.decode(out[0], skip_special_tokens=True).strip()


TASK = Seq2SeqTask()
