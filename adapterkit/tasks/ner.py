"""Token classification with BIO tags (NER). Data: ``tokens`` + ``tags`` lists, or CoNLL files.

Word-level tags are aligned to sub-words: the first sub-word of each word carries the tag, the rest
(and special tokens) are ignored (-100). Eval: seqeval entity-level precision/recall/F1, overall and per type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from ..curves import TIMINGS
from ..data.cache import cached_map
from ..data.columns import require_columns
from ..data.sources import load_train_eval
from ..errors import UserError
from ..training import shape_multiple, training_kwargs
from .base import TaskData, TaskOptions
from .rows import by_length, checked_rows, clip_pieces, scalars, warn_truncated


class NerOptions(TaskOptions):
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    max_length: int = Field(128, gt=0)
    entity_types: list[str] | None = Field(None, description="entity types (without B-/I-); default: the "
                                                             "types seen in train")


def tag_set(entity_types) -> list[str]:
    """O, then B-/I- for every entity type (a type seen only as B- in train may start with I- in eval)."""
    return ["O", *(f"{prefix}-{kind}" for kind in sorted(set(entity_types)) for prefix in ("B", "I"))]


class NerTask:
    name = "ner"
    summary = "token classification (BIO); data columns tokens, tags (or CoNLL files)"
    options = NerOptions
    auto_class = "AutoModelForTokenClassification"
    peft_task_type = "TOKEN_CLS"
    primary_metric = "eval_f1"
    greater_is_better = True

    def load_data(self, plan) -> TaskData:
        from datasets import Dataset

        opts, on_error = plan.task_options, plan.recipe.data.on_error
        train_rows, eval_rows = load_train_eval(plan.recipe.data, plan.where)
        for rows, key in ((train_rows, "data.train"), (eval_rows, "data.eval")):
            require_columns(rows, [opts.tokens_column, opts.tags_column], self.name, f"{plan.where}: {key}",
                            "task.tokens_column / task.tags_column")

        def check(row):
            tokens, tags = row.get(opts.tokens_column), row.get(opts.tags_column)
            if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
                return f"column {opts.tokens_column!r} must be a non-empty list of strings"
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                return f"column {opts.tags_column!r} must be a list of strings"
            if len(tokens) != len(tags):
                return f"{len(tokens)} tokens but {len(tags)} tags"
            bad = [t for t in tags if t != "O" and not t.startswith(("B-", "I-"))]
            if bad:
                return f"tag {bad[0]!r} is not BIO (O, B-TYPE, I-TYPE)"
            return None

        def check_known(row):
            problem = check(row)
            unknown = problem is None and [t for t in row[opts.tags_column] if t not in index]
            return f"tag {unknown[0]!r} is not in {origin}; add {unknown[0][2:]!r} to task.entity_types" if unknown \
                else problem

        def types(row):
            tags = row.get(opts.tags_column)
            found = {t[2:] for t in tags if isinstance(t, str) and t[:2] in ("B-", "I-")} if isinstance(tags, list) \
                else set()
            return sorted(found & set(opts.entity_types)) if opts.entity_types else sorted(found)

        if opts.entity_types:
            labels, origin = tag_set(opts.entity_types), "task.entity_types"
            index = {t: i for i, t in enumerate(labels)}
            train_rows, skipped = checked_rows(train_rows, check_known, on_error, "train", types)
        else:
            train_rows, skipped = checked_rows(train_rows, check, on_error, "train", types)
            labels = tag_set({t[2:] for r in train_rows for t in r[opts.tags_column] if t != "O"})
            index, origin = {t: i for i, t in enumerate(labels)}, "the types seen in train"
        if not any(t != "O" for r in train_rows for t in r[opts.tags_column]):
            raise UserError(f"the {len(train_rows)} train rows of {plan.recipe.data.train} have only 'O' tags: "
                            "there is no entity to learn (tag entities B-TYPE / I-TYPE)",
                            where=f"{plan.where}: data.train")
        eval_rows, skipped_eval = checked_rows(eval_rows, check_known, on_error, "eval")

        def table(rows):
            words = [clip_pieces(r[opts.tokens_column], opts.max_length) for r in rows]
            return Dataset.from_dict({"tokens": words, "tags": [[index[t] for t in r[opts.tags_column][:len(w)]]
                                                                for r, w in zip(rows, words)]})

        return TaskData(table(train_rows), table(eval_rows), labels, skipped + skipped_eval)

    def model_kwargs(self, data: TaskData) -> dict[str, Any]:
        return {"num_labels": len(data.labels), "id2label": dict(enumerate(data.labels)),
                "label2id": {n: i for i, n in enumerate(data.labels)}}

    def tokenize(self, dataset, tokenizer, max_length: int):
        if not getattr(tokenizer, "is_fast", False):
            raise UserError("the ner task needs a fast tokenizer (word_ids) for label alignment")

        def align(batch):
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            enc["labels"] = []
            for i, tags in enumerate(batch["tags"]):
                previous, labels = None, []
                for word in enc.word_ids(i):
                    labels.append(-100 if word is None or word == previous else tags[word])
                    previous = word
                enc["labels"].append(labels)
            return enc

        import transformers

        key = [tokenizer, max_length, Path(__file__).read_bytes(), transformers.__version__]  # cached by fingerprint
        return warn_truncated(cached_map(dataset, align, key, batched=True, remove_columns=["tokens", "tags"]),
                              max_length)

    def build_trainer(self, plan, model, tokenizer, data: TaskData, run_dir: Path):
        from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

        max_length = plan.task_options.max_length
        return Trainer(
            model=model,
            args=TrainingArguments(**training_kwargs(plan, run_dir)),
            train_dataset=None if data.train is None else self.tokenize(data.train, tokenizer, max_length),
            eval_dataset=by_length(self.tokenize(data.eval, tokenizer, max_length)),
            processing_class=tokenizer,
            data_collator=DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=shape_multiple(plan.hardware)),
            compute_metrics=lambda prediction: scalars(self.report(prediction, data.labels)),  # train.eval_every
        )

    def report(self, prediction, labels: list[str]) -> dict[str, Any]:
        """seqeval's entity-level precision/recall/F1 (overall and per type) of a Trainer prediction."""
        from ..metrics import load_metric

        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted, gold = [], []
        for pred_row, label_row in zip(logits.argmax(-1), prediction.label_ids):
            keep = label_row != -100
            predicted.append([labels[i] for i in pred_row[keep]])
            gold.append([labels[i] for i in label_row[keep]])
        return load_metric("seqeval_entities").compute(predictions=predicted, references=gold)

    def evaluate(self, plan, trainer, data: TaskData, run_dir: Path) -> dict[str, Any]:
        output = trainer.predict(trainer.eval_dataset, metric_key_prefix="eval")
        metrics = {k: v for k, v in output.metrics.items() if k not in TIMINGS}  # eval_loss + compute_metrics' scalars
        metrics["per_type"] = self.report(output, data.labels)["per_type"]
        return metrics


TASK = NerTask()
