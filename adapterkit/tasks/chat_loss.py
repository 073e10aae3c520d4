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

Token counting: a padding-free batch has no ``attention_mask``, and the Trainer then counts "non-padding"
tokens as ``input_ids != pad_token_id``; many chat tokenizers (SmolLM2's among them) pad with their
end-of-turn token, which would drop every ``<|im_end|>`` from the count. Such a batch holds no padding,
so every token counts.
"""

from __future__ import annotations

from trl import SFTTrainer


class SelectiveLossSFTTrainer(SFTTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch
        import torch.nn.functional as F

        labels = inputs.get("labels")
        if labels is None or labels.shape[0] != 1 or _prepends_virtual_tokens(model):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        targets = inputs["shift_labels"][0] if "shift_labels" in inputs else labels[0, 1:]
        keep = (targets != -100).nonzero().flatten()
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "shift_labels")}
        outputs = model(**model_inputs, logits_to_keep=keep, use_cache=False)
        logits = outputs.logits[0].float()  # (len(keep), vocab)
        total = F.cross_entropy(logits, targets[keep], reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else keep.numel()
        loss = total / torch.as_tensor(count, device=total.device).clamp(min=1)
        return (loss, {"loss": loss}) if return_outputs else loss


    def _track_num_input_tokens(self, inputs):
        padding_free = "attention_mask" not in inputs and "position_ids" in inputs
        if padding_free and self.args.include_num_input_tokens_seen == "non_padding":
            self.state.num_input_tokens_seen += int(inputs["input_ids"].numel())
            return
        super()._track_num_input_tokens(inputs)


def _prepends_virtual_tokens(model) -> bool:
    config = getattr(model, "active_peft_config", None)
    return bool(config is not None and config.is_prompt_learning)
