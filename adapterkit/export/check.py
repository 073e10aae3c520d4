"""Every export checks itself: the exported model against the run's own model (adapter on base, quantized
base for QLoRA) on the first ``ROWS`` rows of the run's eval split (a cap, for speed).

Reported: max |Δlogit| (over real tokens, padding left out) and the task's quality metrics of both
(classification: accuracy and macro-F1; NER: seqeval entity F1; chat: eval loss on assistant tokens). A
``Tolerance`` bounds them; the formats choose theirs per dtype:

    merged fp32, ONNX fp32     max |Δlogit| <= 1e-4 x max(1, max |logit|), eval loss within +0.01%, same
                               accuracy / F1 (fp32 rounding grows with the logits: SmolLM2's ~20-wide
                               logits differ by ~1.1e-4 after a correct merge; a classifier's stay below 1)
    merged fp16                eval loss within +1%, accuracy / F1 at most 2 points lower
    merged bf16                eval loss within +3%, accuracy / F1 at most 3 points lower
    GGUF f16 / bf16 / q8_0     eval loss within +1% / +3% / +3%, and max |Δlogit| at most 2% / 15% / 15% of
                               the largest reference logit (a wrong q/k permutation or tensor moves it far more)

The export must also sit nearer the trained model than the same model with its adapter switched off (peft's
``disable_adapter``): mean |Δlogit| against the trained outputs above mean |Δlogit| against the untrained ones
means the trained weights did not reach the export. This is what catches a lossy export (fp16/bf16, whose
max |Δlogit| is reported, not bounded) that lost its adapter: the quality figures of a short run barely move
without it. Runs with no adapter to switch off (full, freeze) skip it. Its limit: an export that kept a trained
part and lost another (a classifier's trained head kept, its LoRA matrices lost) is caught only where the lost
part moves the logits more than the export dtype's rounding does.

How a model's outputs are scored depends on its head (the task's Auto class), not on the task's name:
``SCORERS`` holds one scorer per head.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ROWS = 64  # eval rows the check runs on
KEEP_LOGITS = 64 * 2**20  # reference logits kept for max |Δlogit| (floats; later rows: metrics only)
UNTRAINED_KEEP = 16 * 2**20  # logits with the adapter switched off kept for the nearer-to-which test (floats)
BATCH = 16


@dataclass(frozen=True)
class Tolerance:
    # bound on max |Δlogit| for logits up to 1 in size, scaled by max(1, max |reference logit|) beyond
    max_abs_logit: float | None = None  # None: reported, not bounded
    # max |Δlogit| / max |reference logit| (the same rows): for lossy formats, whose error grows with the logits
    max_rel_logit: float | None = None
    loss_increase: float = 1e-4  # relative eval-loss increase allowed
    metric_drop: float = 0.0  # absolute drop allowed in accuracy / F1 (0: the same or better)


@dataclass
class Reference:
    scorer: Any
    batches: list[dict]
    logits: list[Any]  # numpy logits of the first batches (None beyond KEEP_LOGITS)
    summaries: list[Any]
    metrics: dict
    rows: int
    untrained: list[Any]  # logits of the first batches with the adapter switched off (None: not kept / no adapter)


def torch_runner(model) -> Callable:
    """A transformers model as a check runner: dict of input tensors -> float32 numpy logits."""
    import torch

    def run(inputs):
        with torch.no_grad():
            return model(**inputs).logits.float().numpy()

    return run


def reference(source, rows: int) -> Reference:
    """The run's own model on the first ``rows`` eval rows."""
    import warnings

    from datasets.utils import logging as ds_logging

    scorer = SCORERS[source.plan.task.auto_class]
    bars = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()  # "Map: 100%" over 64 rows
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the task's tokenizer notes (truncation) were shown during the run
            batches = scorer.batches(source, min(rows, len(source.data.eval)))
    finally:
        if bars:
            ds_logging.enable_progress_bar()
    runner, kept, summaries, floats = torch_runner(source.model), [], [], 0
    switch_off = getattr(source.model, "disable_adapter", None)  # peft models; full/freeze have no adapter
    untrained = []
    for batch in batches:
        logits = runner(batch["inputs"])
        floats += logits.size
        kept.append(logits if floats <= KEEP_LOGITS else None)
        untrained.append(None)
        if switch_off is not None and floats <= UNTRAINED_KEEP:
            with switch_off():
                untrained[-1] = runner(batch["inputs"])
        summaries.append(scorer.summarize(logits, batch))
    return Reference(scorer, batches, kept, summaries, scorer.metrics(summaries, source),
                     sum(len(b["inputs"]["input_ids"]) for b in batches), untrained)


def compare(ref: Reference, runner: Callable, tolerance: Tolerance) -> dict:
    """The exported model (``runner``) against the reference: figures, verdict and ``passed``."""
    import numpy as np

    delta, scale, compared, summaries = 0.0, 0.0, 0, []
    near = [0.0, 0.0, 0]  # sum |Δlogit| against the trained and the adapter-off outputs, and how many logits
    for batch, expected, off in zip(ref.batches, ref.logits, ref.untrained):
        logits = runner(batch["inputs"])
        if expected is not None and batch["mask"].any():
            mask = batch["mask"]
            diff = np.abs(logits.astype(np.float64) - expected)
            if off is not None:
                near[0] += float(diff[mask].sum())
                near[1] += float(np.abs(logits.astype(np.float64) - off)[mask].sum())
                near[2] += diff[mask].size
            worst = float(diff[mask].max())  # NaN/inf propagate (Python's max() would drop a NaN)
            if math.isfinite(delta) and not worst <= delta:
                delta = worst
            scale = max(scale, float(np.abs(expected[mask]).max()))
            compared += len(batch["inputs"]["input_ids"])
        summaries.append(ref.scorer.summarize(logits, batch))
    metrics = ref.scorer.metrics(summaries, None)
    problems = []
    bound = None if tolerance.max_abs_logit is None else tolerance.max_abs_logit * max(1.0, scale)
    if not math.isfinite(delta):
        problems.append(f"max |Δlogit| is {delta}")
    elif bound is not None and delta > bound:
        problems.append(f"max |Δlogit| {delta:.3g} > {bound:.3g}" + (f" ({tolerance.max_abs_logit:g} x max |logit| "
                                                                     f"{scale:.3g})" if scale > 1 else ""))
    relative = delta / scale if scale else 0.0
    near_trained, near_untrained = (near[0] / near[2], near[1] / near[2]) if near[2] else (None, None)
    if near_trained is not None and not near_trained <= near_untrained:
        problems.append(f"the export is nearer the model with its adapter switched off (mean |Δlogit| "
                        f"{near_untrained:.3g}) than the trained model ({near_trained:.3g}): the trained weights are "
                        "missing from it")
    if tolerance.max_rel_logit is not None and relative > tolerance.max_rel_logit:
        problems.append(f"max |Δlogit| {delta:.3g} is {relative:.3g} of max |logit| {scale:.3g} "
                        f"> {tolerance.max_rel_logit:g}")
    for key, higher_is_better in ref.scorer.quality:
        was, now = ref.metrics[key], metrics[key]
        if not math.isfinite(now):
            problems.append(f"{key} is {now}")
        elif higher_is_better and now < was - tolerance.metric_drop - 1e-12:
            problems.append(f"{key} {now:.4f} < {was:.4f} - {tolerance.metric_drop:g}")
        elif not higher_is_better and now > was * (1 + tolerance.loss_increase) + 1e-9:
            problems.append(f"{key} {now:.4f} > {was:.4f} x (1 + {tolerance.loss_increase:g})")
    shown = ", ".join(f"{k} {ref.metrics[k]:.4f} -> {metrics[k]:.4f}" for k, _ in ref.scorer.quality)
    verdict = "; ".join(problems) if problems else f"passed (max |Δlogit| {delta:.3g}; {shown})"
    return {"passed": not problems, "verdict": verdict, "eval_rows": ref.rows, "rows_compared_for_logits": compared,
            "max_abs_logit_diff": delta, "max_abs_logit": scale, "relative_logit_diff": relative,
            "mean_abs_logit_diff": near_trained, "mean_abs_logit_diff_adapter_off": near_untrained,
            "reference": ref.metrics, "exported": metrics, "tolerance": vars(tolerance)}


def _chunks(dataset, collator, columns):
    import numpy as np

    out = []
    for start in range(0, len(dataset), BATCH):
        rows = [dataset[i] for i in range(start, min(start + BATCH, len(dataset)))]
        batch = collator(rows)
        inputs = {k: batch[k] for k in columns if k in batch}
        out.append({"inputs": inputs, "labels": batch["labels"].numpy(),
                    "mask": batch["attention_mask"].numpy().astype(bool) if "attention_mask" in batch else
                    np.ones(batch["input_ids"].shape, bool)})
    return out


class SequenceScorer:
    """Sequence classification: logits [B, labels]; accuracy and macro-F1."""

    quality = (("accuracy", True), ("macro_f1", True))

    def batches(self, source, rows):
        from transformers import DataCollatorWithPadding

        data = source.plan.task.tokenize(source.data.eval.select(range(rows)), source.tokenizer,
                                         source.plan.task_options.max_length)
        batches = _chunks(data, DataCollatorWithPadding(source.tokenizer), source.tokenizer.model_input_names)
        for b in batches:
            b["mask"] = b["mask"].any(axis=1)  # one logit row per sequence
        self.labels = source.data.labels
        return batches

    def summarize(self, logits, batch):
        return logits.argmax(-1).tolist(), batch["labels"].tolist()

    def metrics(self, summaries, source):
        from ..metrics import load_metric

        predicted = [p for s in summaries for p in s[0]]
        gold = [g for s in summaries for g in s[1]]
        report = load_metric("classification_report").compute(predictions=predicted, references=gold,
                                                               label_names=self.labels)
        return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


class TokenScorer:
    """Token classification (BIO): logits [B, T, tags]; seqeval entity F1 on first sub-words."""

    quality = (("f1", True),)

    def batches(self, source, rows):
        from transformers import DataCollatorForTokenClassification

        data = source.plan.task.tokenize(source.data.eval.select(range(rows)), source.tokenizer,
                                         source.plan.task_options.max_length)
        self.labels = source.data.labels
        return _chunks(data, DataCollatorForTokenClassification(source.tokenizer), source.tokenizer.model_input_names)

    def summarize(self, logits, batch):
        predicted, gold = [], []
        for row, labels in zip(logits.argmax(-1), batch["labels"]):
            keep = labels != -100
            predicted.append([self.labels[i] for i in row[keep]])
            gold.append([self.labels[i] for i in labels[keep]])
        return predicted, gold

    def metrics(self, summaries, source):
        from ..metrics import load_metric

        report = load_metric("seqeval_entities").compute(predictions=[p for s in summaries for p in s[0]],
                                                         references=[g for s in summaries for g in s[1]])
        return {"f1": report["f1"], "accuracy": report["accuracy"]}


class CausalScorer:
    """Chat: logits [1, T, vocab], one conversation per batch (no padding); eval loss on assistant tokens."""

    quality = (("eval_loss", False),)

    def batches(self, source, rows):
        import numpy as np
        import torch

        plan = source.plan
        data = plan.task.tokenized(source.data.eval.select(range(rows)), source.tokenizer, plan.task_options,
                                   "eval", plan.where)
        out = []
        for row in data:
            ids = torch.tensor([row["input_ids"]])
            out.append({"inputs": {"input_ids": ids, "attention_mask": torch.ones_like(ids)},
                        "labels": np.array(row["assistant_masks"]), "mask": np.ones(ids.shape, bool)})
        return out

    def summarize(self, logits, batch):
        import numpy as np

        ids = batch["inputs"]["input_ids"][0].numpy()
        scored = batch["labels"][1:].astype(bool)
        row = logits[0, :-1].astype(np.float64)
        top = row.max(-1, keepdims=True)
        logp = row - top - np.log(np.exp(row - top).sum(-1, keepdims=True))
        nll = -logp[np.arange(len(ids) - 1), ids[1:]]
        return float(nll[scored].sum()), int(scored.sum())

    def metrics(self, summaries, source):
        total, count = sum(s[0] for s in summaries), sum(s[1] for s in summaries)
        loss = total / count if count else float("nan")
        return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50.0)), "scored_tokens": count}


SCORERS = {"AutoModelForSequenceClassification": SequenceScorer(),
           "AutoModelForTokenClassification": TokenScorer(),
           "AutoModelForCausalLM": CausalScorer()}
