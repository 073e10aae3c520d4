"""A padding-free pass's row rounded up to a multiple of tokens, with the same loss and gradients.

Under bf16 on a CPU, oneDNN keeps memory for every distinct matmul shape it has run (``training.shape_multiple``),
and a padding-free pass (the conversations of a run, its shared opening computed once) has a new length almost
every step. Here the row gets a tail of pad tokens up to the next multiple: the tail is a sequence of its own
(position ids from 0, so attention keeps it apart from the conversations; under the shared-opening 4D mask it
sees only itself, causally), and its positions carry no label, so no kept logit, loss or gradient changes
(tested). A batch that is not a padding-free row (padded rows, several rows) is left as it is: its collator
pads it (``SFTConfig.pad_to_multiple_of``).
"""

from __future__ import annotations

# Keys of a padding-free row this module knows how to extend; a row with any other per-token key is left as it is.
_ROW_KEYS = {"input_ids", "position_ids", "attention_mask", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q",
             "max_length_k", "seq_idx"}


def round_row(inputs: dict, targets, multiple: int | None, pad_id: int):
    """(inputs, targets) with the row padded to a multiple of ``multiple`` tokens (targets -100 on the pad)."""
    import torch

    ids = inputs.get("input_ids")
    mask = inputs.get("attention_mask")
    if (not multiple or ids is None or ids.shape[0] != 1 or "position_ids" not in inputs
            or (mask is not None and mask.dim() != 4) or set(inputs) - _ROW_KEYS):
        return inputs, targets
    n = int(ids.shape[1])
    extra = -n % multiple
    if extra == 0:
        return inputs, targets
    device = ids.device
    out = dict(inputs)
    out["input_ids"] = torch.cat([ids, ids.new_full((1, extra), pad_id)], dim=1)
    positions = inputs["position_ids"]
    out["position_ids"] = torch.cat([positions, torch.arange(extra, device=device, dtype=positions.dtype)[None]], dim=1)
    if mask is not None:  # shared opening (prefix.py): the tail sees itself causally, nothing else sees the tail
        tail = torch.ones(extra, extra, dtype=torch.bool, device=device).tril()
        if mask.dtype == torch.bool:
            grown = torch.zeros(1, 1, n + extra, n + extra, dtype=torch.bool, device=device)
            grown[..., n:, n:] = tail
        else:  # additive (eager attention): 0 where visible, the dtype's minimum elsewhere
            low = torch.finfo(mask.dtype).min
            grown = torch.full((1, 1, n + extra, n + extra), low, dtype=mask.dtype, device=device)
            grown[..., n:, n:] = torch.zeros(extra, extra, dtype=mask.dtype, device=device).masked_fill(~tail, low)
        grown[..., :n, :n] = mask
        out["attention_mask"] = grown
    if "cu_seq_lens_q" in inputs:  # varlen kernels: the tail is one more sequence
        cu = inputs["cu_seq_lens_q"]
        cu = torch.cat([cu, cu.new_tensor([n + extra])])
        out["cu_seq_lens_q"] = out["cu_seq_lens_k"] = cu
        out["max_length_q"] = out["max_length_k"] = int(cu.diff().max())
        if "seq_idx" in inputs:
            seq = inputs["seq_idx"]
            out["seq_idx"] = torch.cat([seq, seq.new_full((1, extra), cu.numel() - 2)], dim=1)
    return out, torch.cat([targets, targets.new_full((extra,), -100)])


def round_kept(keep, targets, multiple: int | None):
    """(positions whose logits the LM head computes, their targets), as many as a multiple of ``multiple``.

    The LM head runs only on the labelled positions (``loss.py``), whose number changes from pass to pass even when
    the row is rounded; each new count is a new bf16 matmul shape for the 576 x 49,152 head (measured on the AMD EPYC:
    100 distinct counts grew a bf16 head's peak RSS by 3.4 GB, the same counts rounded to 16 by 0.4 GB, fp32 by
    0.3 GB). The extra rows repeat position ``keep[0]`` with target -100: cross-entropy ignores them, so the loss and
    gradients are unchanged (tested)."""
    import torch

    kept = targets[keep]
    extra = -keep.numel() % multiple if multiple and keep.numel() else 0
    if not extra:
        return keep, kept
    return torch.cat([keep, keep[:1].expand(extra)]), torch.cat([kept, kept.new_full((extra,), -100)])
