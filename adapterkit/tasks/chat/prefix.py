"""Shared prefix: the tokens every conversation of a padding-free row opens with, computed once.

A chat template opens every conversation the same way: SmolLM2's renders its default system prompt and
the first user header, 24 of the 58 tokens of an average chatterbot conversation. A padding-free row of N
conversations computes those tokens N times with identical results (causal attention, same positions).
Here the row becomes one copy of the common opening followed by each conversation's remainder, with
position ids that go on from the opening and a 4D attention mask that lets each remainder see the opening
and itself, causally. Every kept logit and every gradient is what the full row gives (tested: the same
loss and gradients as trl's padded loss); the compute for N-1 copies of the opening is gone.

Only unlabelled tokens are shared: the opening stops before the first position whose next token carries
a label in any conversation, so no logit that enters the loss is dropped. The custom mask needs an
attention that takes one (``sdpa``, ``eager``); under flash attention, or for a row of one conversation,
nothing changes.
"""

from __future__ import annotations

# Attention implementations that take a custom 4D mask, and the mask form each wants.
_MASK_KIND = {"sdpa": "bool", "eager": "additive"}


def attention_takes_mask(model) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) in _MASK_KIND


def conversation_bounds(position_ids) -> list[tuple[int, int]]:
    """[start, end) of each conversation of a padding-free row (its position ids restart at 0)."""
    length = int(position_ids.shape[-1])
    starts = (position_ids.reshape(-1) == 0).nonzero().flatten().tolist()
    return list(zip(starts, starts[1:] + [length]))


def shared_length(input_ids, targets, bounds: list[tuple[int, int]]) -> int:
    """Tokens every conversation opens with, before any position whose next token carries a label.

    ``input_ids`` is the row, ``targets[i]`` the label position ``i`` predicts (-100: none). Each
    conversation keeps at least one token of its own.
    """
    import torch

    if len(bounds) < 2:
        return 0
    ids, first = input_ids.reshape(-1), bounds[0][0]
    limit = min(end - start for start, end in bounds) - 1
    for start, end in bounds:
        labelled = (targets[start:end] != -100).nonzero()
        if labelled.numel():
            limit = min(limit, int(labelled[0]))
    if limit <= 0:
        return 0
    openings = torch.stack([ids[start:start + limit] for start, _ in bounds])
    differs = (openings != ids[first:first + limit]).any(dim=0).nonzero()
    return int(differs[0]) if differs.numel() else limit


def compacted_length(bounds: list[tuple[int, int]], shared: int) -> int:
    return sum(end - start for start, end in bounds) - shared * (len(bounds) - 1)


def share_prefix(inputs: dict, targets, model) -> tuple[dict, object] | None:
    """The padding-free ``inputs`` rewritten with one copy of the shared opening, and their targets; None
    when nothing would be shared (one conversation, no common opening, or an attention without masks)."""
    import torch

    if not attention_takes_mask(model) or "position_ids" not in inputs:
        return None
    ids, positions = inputs["input_ids"], inputs["position_ids"]
    bounds = conversation_bounds(positions)
    shared = shared_length(ids, targets, bounds)
    if shared == 0:
        return None
    device = ids.device
    keep = torch.cat([torch.arange(bounds[0][0], bounds[0][0] + shared, device=device)] +
                     [torch.arange(start + shared, end, device=device) for start, end in bounds])
    # Segment of each kept token: -1 for the opening, k for the remainder of conversation k.
    segment = torch.cat([torch.full((shared,), -1, device=device)] +
                        [torch.full((end - start - shared,), k, device=device) for k, (start, end) in enumerate(bounds)])
    n = keep.numel()
    causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()
    visible = causal & ((segment[None, :] == -1) | (segment[None, :] == segment[:, None]))
    if _MASK_KIND[model.config._attn_implementation] == "additive":
        dtype = model.get_input_embeddings().weight.dtype
        mask = torch.zeros(n, n, dtype=dtype, device=device).masked_fill(~visible, torch.finfo(dtype).min)
    else:
        mask = visible
    compact = {"input_ids": ids[:, keep], "position_ids": positions[:, keep], "attention_mask": mask[None, None]}
    return compact, targets[keep]
