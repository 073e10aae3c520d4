"""Token classification with BIO tags (NER). Data: ``tokens`` + ``tags`` lists, or CoNLL files.

Word-level tags are aligned to sub-words: the first sub-word of each word carries the tag, the rest
(and special tokens) are ignored (-100). Eval: seqeval entity-level precision/recall/F1, overall and per type,
over whole sentences: the words ``task.max_length`` cuts off keep their gold tags and are predicted "O", so an
entity past the limit counts as missed (the log says how many), not as absent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import Field

from .. import distributed
from ..curves import TIMINGS
from ..data.cache import cached_map
from ..data.columns import require_columns
from ..data.sources import load_train_eval
from ..errors import UserError
from ..training import shape_multiple, training_kwargs
from .base import TaskData, TaskOptions
from .rows import by_length, checked_rows, clip_pieces, scalars, warn_shared, warn_truncated

log = logging.getLogger("adapterkit")


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
        warn_shared(train_rows, eval_rows)
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
            # every word's tag, also those of words clip_pieces cut: eval counts their entities as missed
            return Dataset.from_dict({"tokens": words, "tags": [[index[t] for t in r[opts.tags_column]] for r in rows]})

        return TaskData(table(train_rows), table(eval_rows), labels, skipped + skipped_eval)

    def model_kwargs(self, data: TaskData) -> dict[str, Any]:
        return {"num_labels": len(data.labels), "id2label": dict(enumerate(data.labels)),
                "label2id": {n: i for i, n in enumerate(data.labels)}}

    def tokenize(self, dataset, tokenizer, max_length: int, cut_tags: bool = False):
        """Sub-word ids and aligned labels; ``cut_tags``: also each row's tags of the words past ``max_length``
        (eval reads them; the Trainer drops the column before batching)."""
        if not getattr(tokenizer, "is_fast", False):
            raise UserError("the ner task needs a fast tokenizer (word_ids) for label alignment")

        def align(batch):
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            enc["labels"], cut = [], []
            for i, tags in enumerate(batch["tags"]):
                previous, labels = None, []
                for word in enc.word_ids(i):
                    labels.append(-100 if word is None or word == previous else tags[word])
                    previous = word
                enc["labels"].append(labels)
                cut.append(tags[max((w for w in enc.word_ids(i) if w is not None), default=-1) + 1:])
            if cut_tags:
                enc["cut_tags"] = cut
            return enc

        import transformers

        key = [tokenizer, max_length, cut_tags, Path(__file__).read_bytes(), transformers.__version__]  # by fingerprint
        return warn_truncated(cached_map(dataset, align, key, batched=True, remove_columns=["tokens", "tags"]),
                              max_length)

    def build_trainer(self, plan, model, tokenizer, data: TaskData, run_dir: Path):
        from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

        max_length = plan.task_options.max_length
        evaluation = by_length(self.tokenize(data.eval, tokenizer, max_length, cut_tags=True))
        warn_cut_entities(evaluation["cut_tags"], data.labels, max_length)
        return Trainer(
            model=model,
            args=TrainingArguments(**training_kwargs(plan, run_dir)),
            train_dataset=None if data.train is None else self.tokenize(data.train, tokenizer, max_length),
            eval_dataset=evaluation,
            processing_class=tokenizer,
            data_collator=DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=shape_multiple(plan.hardware)),
            compute_metrics=lambda prediction: scalars(self.report(prediction, data.labels,  # train.eval_every
                                                                   evaluation["cut_tags"])),
        )

    def report(self, prediction, labels: list[str], cut_tags: list[list[int]] | None = None) -> dict[str, Any]:
        """seqeval's entity-level precision/recall/F1 (overall and per type) of a Trainer prediction; ``cut_tags``
        (a row's gold tags past ``task.max_length``, in the prediction's row order) join the gold, predicted "O"."""
        from ..metrics import load_metric

        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted, gold = [], []
        for k, (pred_row, label_row) in enumerate(zip(logits.argmax(-1), prediction.label_ids)):
            keep = label_row != -100
            cut = [labels[i] for i in cut_tags[k]] if cut_tags is not None else []
            predicted.append([labels[i] for i in pred_row[keep]] + ["O"] * len(cut))
            gold.append([labels[i] for i in label_row[keep]] + cut)
        return load_metric("seqeval_entities").compute(predictions=predicted, references=gold)

    def evaluate(self, plan, trainer, data: TaskData, run_dir: Path) -> dict[str, Any]:
        output = trainer.predict(trainer.eval_dataset, metric_key_prefix="eval")
        metrics = {k: v for k, v in output.metrics.items() if k not in TIMINGS}  # eval_loss + compute_metrics' scalars
        metrics["per_type"] = self.report(output, data.labels, trainer.eval_dataset["cut_tags"])["per_type"]
        return metrics


def warn_cut_entities(cut_tags: list[list[int]], labels: list[str], max_length: int) -> None:
    """Say how many gold eval entities begin past ``task.max_length`` (they count as missed), once across ranks."""
    starts = sum(labels[t].startswith("B-") or (labels[t].startswith("I-") and (k == 0 or labels[row[k - 1]][2:] !=
                                                                                 labels[t][2:]))
                 for row in cut_tags for k, t in enumerate(row))
    if starts and distributed.is_main():
        log.warning("%d eval entities begin past task.max_length = %d tokens; the model never sees them and they "
                    "count as missed (raise task.max_length to score them)", starts, max_length)


TASK = NerTask()
