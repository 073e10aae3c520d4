"""Chat loss that projects only the positions that carry a label through the LM head.

trl's SFTTrainer scores every position of the batch on devices without Triton (its fused LM head
compacts to labelled positions only on GPU) and also computes entropy and top-1 accuracy for its logs.
For chat SFT with loss on assistant turns, roughly a third of the tokens carry a label, and the LM head
(vocabulary x width, 49k x 576 for SmolLM2) is the largest matmul of a small model. Here the model is
called with ``logits_to_keep`` = the labelled positions, which transformers' causal LMs accept, so
logits exist only for those rows, and the loss is the plain token-mean cross-entropy trl would compute.

Used with padding-free batches (one row holding the batch's conversations back to back), where the
labelled positions are exact. Anything else (several rows, prompt-learning methods that prepend
virtual tokens) falls back to trl's own loss.

Memory: a padding-free batch is one row of all its conversations, and activations grow with its tokens.
With ``tokens_per_pass`` set, ``training_step`` runs forward and backward over runs of whole conversations
of at most that many tokens and lets the gradients add up; each pass's loss is divided by the labelled
tokens of the whole batch, so the step's loss and gradients are those of one pass over the batch (tested),
with the activations of a fraction of it.

Shared opening: with ``share_prefix`` set, the tokens every conversation of a pass opens with (the
template's system prompt and user header) are computed once (``prefix.py``); passes are sized on the
row after that compaction. Same loss and gradients (tested).

Token counting: a padding-free batch has no ``attention_mask``, and the Trainer then counts "non-padding"
tokens as ``input_ids != pad_token_id``; many chat tokenizers (SmolLM2's among them) pad with their
end-of-turn token, which would drop every ``<|im_end|>`` from the count. Such a batch holds no padding,
so every token counts.
"""

from __future__ import annotations

from trl import SFTTrainer

from . import prefix as chat_prefix
from . import rounding as chat_rounding


class SelectiveLossSFTTrainer(SFTTrainer):
    tokens_per_pass: int | None = None  # set by the chat task (task.tokens_per_pass)
    share_prefix: bool = False  # set by the chat task (task.share_prefix)
    pad_multiple: int | None = None  # set by the chat task (training.shape_multiple): rounding.py

    def training_step(self, model, inputs, num_items_in_batch=None):
        passes = _conversation_runs(inputs, self.tokens_per_pass, self._shared_length(model, inputs))
        if len(passes) < 2 or num_items_in_batch is None:  # each pass's loss must be over the whole batch's count
            return super().training_step(model, inputs, num_items_in_batch)
        step = super().training_step
        *first, (start, end) = passes
        # several ranks: one gradient all-reduce per step on every rank, whatever its number of passes (DDP
        # reduces what the earlier passes accumulated with the last one); one process: no_sync does nothing
        with self.accelerator.no_sync(model):
            total = sum(step(model, _slice_row(inputs, a, b), num_items_in_batch) for a, b in first)
        return total + step(model, _slice_row(inputs, start, end), num_items_in_batch)

    def _shared_length(self, model, inputs) -> int:
        """Opening tokens the whole batch shares (each pass shares at least these), for sizing passes."""
        ids, labels = inputs.get("input_ids"), inputs.get("labels")
        if not self.share_prefix or ids is None or labels is None or ids.shape[0] != 1 \
                or "position_ids" not in inputs or not chat_prefix.attention_takes_mask(model):
            return 0
        return chat_prefix.shared_length(ids, _targets(inputs), chat_prefix.conversation_bounds(inputs["position_ids"]))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch
        import torch.nn.functional as F

        labels = inputs.get("labels")
        if labels is None or labels.shape[0] != 1 or _prepends_virtual_tokens(model):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        targets = _targets(inputs)
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "shift_labels")}
        if self.share_prefix and (shared := chat_prefix.share_prefix(model_inputs, targets, model)) is not None:
            model_inputs, targets = shared
        pad_id = getattr(self.processing_class, "pad_token_id", None) or 0
        model_inputs, targets = chat_rounding.round_row(model_inputs, targets, self.pad_multiple, pad_id)
        labelled = (targets != -100).nonzero().flatten()
        keep, kept_targets = chat_rounding.round_kept(labelled, targets, self.pad_multiple)
        outputs = model(**model_inputs, logits_to_keep=keep, use_cache=False)
        logits = outputs.logits[0].float()  # (len(keep), vocab)
        total = F.cross_entropy(logits, kept_targets, reduction="sum")  # the rounding's extra rows: -100, ignored
        count = num_items_in_batch if num_items_in_batch is not None else labelled.numel()
        loss = total / torch.as_tensor(count, device=total.device).clamp(min=1)
        return (loss, {"loss": loss}) if return_outputs else loss


    def _track_num_input_tokens(self, inputs):
        padding_free = "attention_mask" not in inputs and "position_ids" in inputs
        if padding_free and self.args.include_num_input_tokens_seen == "non_padding":
            self.state.num_input_tokens_seen += int(inputs["input_ids"].numel())
            return
        super()._track_num_input_tokens(inputs)


def _targets(inputs):
    """The label each position of a one-row batch predicts (-100: none), as long as the row."""
    import torch.nn.functional as F

    if "shift_labels" in inputs:
        return inputs["shift_labels"][0]
    return F.pad(inputs["labels"][0, 1:], (0, 1), value=-100)


def _conversation_runs(inputs, budget: int | None, shared: int = 0) -> list[tuple[int, int]]:
    """[start, end) spans of a padding-free row, each a run of whole conversations of at most ``budget``
    tokens once their ``shared`` opening tokens are counted once (a longer conversation is a span of its
    own); one span when the batch is not padding-free."""
    ids = inputs.get("input_ids")
    if budget is None or ids is None or ids.shape[0] != 1 or "position_ids" not in inputs \
            or "attention_mask" in inputs or ids.shape[1] <= budget:
        return [(0, int(ids.shape[1]) if ids is not None else 0)]
    bounds = chat_prefix.conversation_bounds(inputs["position_ids"])
    spans, run = [], []
    for conversation in bounds:
        if run and chat_prefix.compacted_length(run + [conversation], shared) > budget:
            spans.append((run[0][0], run[-1][1]))
            run = []
        run.append(conversation)
    spans.append((run[0][0], run[-1][1]))
    return spans


def _slice_row(inputs: dict, start: int, end: int) -> dict:
    """The padding-free batch restricted to tokens [start, end), with its sequence boundaries recomputed."""
    import torch

    length = int(inputs["input_ids"].shape[1])
    part = {k: (v[:, start:end] if torch.is_tensor(v) and v.dim() == 2 and v.shape[1] == length else v)
            for k, v in inputs.items()}
    if "cu_seq_lens_q" in inputs:
        starts = (part["position_ids"][0] == 0).nonzero().flatten()
        cu = torch.cat([starts, starts.new_tensor([end - start])]).to(torch.int32)  # on the batch's device
        part["cu_seq_lens_q"] = part["cu_seq_lens_k"] = cu
        part["max_length_q"] = part["max_length_k"] = int(cu.diff().max())
        if "seq_idx" in inputs:
            part["seq_idx"] = torch.repeat_interleave(torch.arange(cu.numel() - 1, dtype=torch.int32, device=cu.device),
                                                      cu.diff())[None]
    return part


def _prepends_virtual_tokens(model) -> bool:
    config = getattr(model, "active_peft_config", None)
    return bool(config is not None and config.is_prompt_learning)
