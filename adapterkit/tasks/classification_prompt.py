"""Zero-shot classification with a causal language model: a prompt template, each label scored by its likelihood.

A causal LM (SmolLM2, Llama, GPT-2...) has no trained classification head before tuning, but it can
read a prompt. Every eval text is put into ``task.zero_shot_prompt`` (``{text}`` and ``{labels}`` filled in)
and each label name is scored as the continuation: the sum of its tokens' log-probabilities. The
predicted label is the most likely one; ``eval_loss`` is the cross-entropy of the true label under the
softmax over the label scores. No calibration: contextual calibration (subtracting each label's score for
the content-free text ``N/A``, Zhao et al. 2021) was tried with SmolLM2-135M on 300 Rotten Tomatoes
reviews and moved accuracy from 0.587 to 0.617 with one prompt and to 0.440 with another.
With a chat template (instruct models) the prompt is the user's message
and the label is the start of the assistant's reply; without one the prompt is followed by ``Label:``.

Labels are scored by their names, so they should be words the model knows (``fresh``/``rotten``, not
``0``/``1``).
"""

from __future__ import annotations

DEFAULT_PROMPT = "Classify the text as one of: {labels}. Reply with the label only.\n\nText: {text}"
PLAIN_SUFFIX = "\nLabel:"  # after the prompt when the tokenizer has no chat template


def is_causal_lm(config) -> bool:
    """A decoder-only language model (as opposed to an encoder such as BERT, or an encoder-decoder): the rule of the
    causal-LM tasks (``tasks/causal.py``)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from .causal import decoder_only_reason

    if decoder_only_reason("classification", config) is not None:
        return False
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in getattr(config, "architectures", None) or []):
        return True
    return getattr(config, "model_type", None) in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def encode_prompts(tokenizer, texts: list[str], labels: list[str], template: str, max_length: int):
    """Per text, the prompt's token ids; per label, its continuation's token ids (shared by all texts)."""
    chat = getattr(tokenizer, "chat_template", None) is not None
    label_ids = [tokenizer(label if chat else f" {label}", add_special_tokens=False)["input_ids"] for label in labels]
    prompts = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
        message = template.format(text=tokenizer.decode(ids), labels=", ".join(labels))
        if chat:
            prompts.append(tokenizer.apply_chat_template([{"role": "user", "content": message}],
                                                         add_generation_prompt=True, tokenize=True,
                                                         return_dict=True)["input_ids"])
        else:
            prompts.append(tokenizer(message + PLAIN_SUFFIX)["input_ids"])
    return prompts, label_ids


def label_log_probs(model, prompts: list[list[int]], label_ids: list[list[int]], pad_id: int,
                    batch_size: int = 16):
    """A (texts x labels) tensor: log P(label tokens | prompt), summed over the label's tokens.

    Sequences are left-padded (explicit position ids), so every label ends at the last position and
    only the last ``longest label + 1`` positions need logits over the vocabulary (``logits_to_keep``
    where the model takes it)."""
    import inspect

    import torch

    device = next(model.parameters()).device
    keep = max(map(len, label_ids)) + 1
    takes_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
    pairs = [(i, k) for i in range(len(prompts)) for k in range(len(label_ids))]
    pairs.sort(key=lambda p: len(prompts[p[0]]) + len(label_ids[p[1]]))  # little padding per batch
    scores = torch.empty(len(prompts), len(label_ids), dtype=torch.float64)
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start:start + batch_size]
            seqs = [prompts[i] + label_ids[k] for i, k in batch]
            width = max(map(len, seqs))
            ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, seq in enumerate(seqs):
                ids[row, width - len(seq):] = torch.tensor(seq)
                mask[row, width - len(seq):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            extra = {"logits_to_keep": keep} if takes_keep else {}
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           position_ids=positions.to(device), **extra).logits[:, -keep:]
            log_probs = logits.float().log_softmax(-1).cpu()
            for row, (i, k) in enumerate(batch):
                targets = torch.tensor(label_ids[k])  # the last len(targets) tokens, predicted one position earlier
                at = torch.arange(keep - 1 - len(targets), keep - 1)
                scores[i, k] = log_probs[row, at, targets].double().sum()
    return scores


def evaluate(model, tokenizer, texts: list[str], references: list[int], labels: list[str], template: str,
             max_length: int, batch_size: int = 16) -> dict:
    """Metrics in the classification task's form (accuracy, macro-F1, per-label report, eval_loss)."""
    import torch

    from ..metrics import load_metric

    prompts, label_ids = encode_prompts(tokenizer, texts, labels, template, max_length)
    scores = label_log_probs(model, prompts, label_ids, tokenizer.pad_token_id, batch_size)
    report = load_metric("classification_report").compute(
        predictions=scores.argmax(-1).tolist(), references=references, label_names=labels)
    metrics = {f"eval_{k}": v for k, v in report.items() if k != "per_label"}
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor(references))
    metrics["eval_loss"] = float(loss)
    metrics["per_label"] = report["per_label"]
    metrics["zero_shot_prompt"] = template
    return metrics
