"""Sequence classification (encoder or decoder). Data: ``text`` + ``label`` columns (names configurable).

Eval: accuracy, macro-F1 and a per-label precision/recall/F1 report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ..curves import TIMINGS
from ..data.cache import cached_map
from ..data.columns import require_columns
from ..data.sources import load_train_eval
from ..training import shape_multiple, training_kwargs
from .base import TaskData, TaskOptions
from .classification_prompt import DEFAULT_PROMPT
from .labels import label_of, ordered, refuse_case_variants
from .rows import by_length, checked_rows, clip_pieces, non_empty_string, scalars, warn_shared, warn_truncated


class ClassificationOptions(TaskOptions):
    text_column: str = "text"
    label_column: str = "label"
    max_length: int = Field(128, gt=0)
    labels: list[str] | None = Field(None, description="label order; default: sorted labels seen in train")
    zero_shot_prompt: str = Field(DEFAULT_PROMPT, description="the zero-shot baseline's prompt for a causal LM "
                                                              "({text}, {labels}); see tasks.classification_prompt")

    @field_validator("zero_shot_prompt")
    @classmethod
    def _names_the_text(cls, value: str) -> str:
        if "{text}" not in value:
            raise ValueError("must contain {text}, where each example's text goes")
        try:
            value.format(text="", labels="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"only {{text}} and {{labels}} can be filled in ({err}); write other braces as "
                             "{{{{ }}}}") from None
        return value


class ClassificationTask:
    name = "classification"
    summary = "sequence classification; data columns text, label"
    options = ClassificationOptions
    auto_class = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    primary_metric = "eval_macro_f1"
    greater_is_better = True

    def load_data(self, plan) -> TaskData:
        from datasets import Dataset

        opts, on_error = plan.task_options, plan.recipe.data.on_error
        train_rows, eval_rows = load_train_eval(plan.recipe.data, plan.where)
        warn_shared(train_rows, eval_rows)
        for rows, key in ((train_rows, "data.train"), (eval_rows, "data.eval")):
            require_columns(rows, [opts.text_column, opts.label_column], self.name, f"{plan.where}: {key}",
                            "task.text_column / task.label_column")

        def check(row):
            if not non_empty_string(row.get(opts.text_column)):
                return f"column {opts.text_column!r} is missing or empty"
            if isinstance(row.get(opts.label_column), (list, tuple, dict)):  # str() would make one class of each set
                return (f"column {opts.label_column!r} holds a {type(row[opts.label_column]).__name__}, not one label "
                        "(multi-label classification is not supported)")
            if label_of(row.get(opts.label_column)) is None:
                return f"column {opts.label_column!r} is missing"
            return None

        def check_train(row):
            problem = check(row)
            if problem is None and opts.labels and label_of(row[opts.label_column]) not in opts.labels:
                return f"label {label_of(row[opts.label_column])!r} is not in task.labels ({', '.join(opts.labels)})"
            return problem

        def classes(row):
            value = label_of(row.get(opts.label_column))
            return [value] if value is not None and (not opts.labels or value in opts.labels) else []

        train_rows, skipped = checked_rows(train_rows, check_train, on_error, "train", classes)
        if not opts.labels:
            refuse_case_variants(train_rows, opts.label_column, f"{plan.where}: data.train")
        labels = opts.labels or ordered(label_of(r[opts.label_column]) for r in train_rows)
        index = {name: i for i, name in enumerate(labels)}
        unknown = "is not in task.labels" if opts.labels else "was not seen in train"

        def check_eval(row):
            problem = check(row)
            if problem is None and label_of(row[opts.label_column]) not in index:
                return f"label {label_of(row[opts.label_column])!r} {unknown} (known: {', '.join(labels)})"
            return problem

        eval_rows, skipped_eval = checked_rows(eval_rows, check_eval, on_error, "eval")
        if len(labels) < 2:
            from ..errors import UserError

            raise UserError(f"classification needs at least 2 labels, train has {labels}", where=plan.where)

        def table(rows):
            return Dataset.from_dict({"text": [clip_pieces([r[opts.text_column]], opts.max_length)[0] for r in rows],
                                      "label": [index[label_of(r[opts.label_column])] for r in rows]})

        return TaskData(table(train_rows), table(eval_rows), labels, skipped + skipped_eval)

    def model_kwargs(self, data: TaskData) -> dict[str, Any]:
        return {"num_labels": len(data.labels), "id2label": dict(enumerate(data.labels)),
                "label2id": {n: i for i, n in enumerate(data.labels)}}

    def tokenize(self, dataset, tokenizer, max_length: int):
        import transformers

        key = [tokenizer, max_length, Path(__file__).read_bytes(), transformers.__version__]  # cached by fingerprint
        return warn_truncated(cached_map(dataset, lambda b: tokenizer(b["text"], truncation=True, max_length=max_length),
                                         key, batched=True, remove_columns=["text"]), max_length)

    def build_trainer(self, plan, model, tokenizer, data: TaskData, run_dir: Path):
        from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

        max_length = plan.task_options.max_length
        trainer = Trainer(
            model=model,
            args=TrainingArguments(**training_kwargs(plan, run_dir)),
            train_dataset=None if data.train is None else self.tokenize(data.train, tokenizer, max_length),
            eval_dataset=by_length(self.tokenize(data.eval, tokenizer, max_length)),
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=shape_multiple(plan.hardware)),
            compute_metrics=lambda prediction: scalars(self.report(prediction, data.labels)),  # train.eval_every
        )
        # A sequence classifier's loss is a mean over examples and ignores num_items_in_batch; the Trainer infers
        # from its **kwargs that it normalises by it, and then neither divides by grad_accum nor undoes its
        # multiplication by the number of ranks (2 ranks: twice the loss and gradients). Say it does not.
        trainer.model_accepts_loss_kwargs = False
        return trainer

    def report(self, prediction, labels: list[str]) -> dict[str, Any]:
        """Accuracy, macro precision/recall/F1 and the per-label report of a Trainer prediction."""
        from ..metrics import load_metric

        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return load_metric("classification_report").compute(
            predictions=logits.argmax(-1).tolist(), references=prediction.label_ids.tolist(), label_names=labels)

    def evaluate(self, plan, trainer, data: TaskData, run_dir: Path) -> dict[str, Any]:
        output = trainer.predict(trainer.eval_dataset, metric_key_prefix="eval")
        metrics = {k: v for k, v in output.metrics.items() if k not in TIMINGS}  # eval_loss + compute_metrics' scalars
        metrics["per_label"] = self.report(output, data.labels)["per_label"]
        return metrics

    def zero_shot_auto_class(self, config) -> str | None:
        """The zero-shot baseline of a causal LM asks it through a prompt; other models keep the fresh head."""
        from .classification_prompt import is_causal_lm

        return "AutoModelForCausalLM" if is_causal_lm(config) else None

    def zero_shot_evaluate(self, plan, model, tokenizer, data: TaskData) -> dict[str, Any]:
        """A causal LM's zero-shot classification through ``task.zero_shot_prompt``."""
        import torch

        from ..loading import torch_dtype
        from . import classification_prompt

        if plan.hardware.device == "cuda":
            model.to("cuda")
        model.eval()
        opts, train = plan.task_options, plan.recipe.train
        autocast = torch_dtype(plan.hardware.precision)
        device_type = "cuda" if plan.hardware.device == "cuda" else "cpu"
        with torch.autocast(device_type, dtype=autocast, enabled=autocast is not None):
            return classification_prompt.evaluate(
                model, tokenizer, list(data.eval["text"]), list(data.eval["label"]), data.labels,
                opts.zero_shot_prompt, opts.max_length, batch_size=train.eval_batch)


TASK = ClassificationTask()

