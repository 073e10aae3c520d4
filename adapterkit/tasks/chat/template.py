"""Tokenize a conversation with the tokenizer's own chat template and mark the assistant tokens.

Works for any template whose rendering of a conversation prefix is a prefix of the whole rendering
(true of the common templates): the characters each assistant turn adds are found by rendering the
conversation up to that turn, and tokens are marked through the fast tokenizer's offsets.
"""

from __future__ import annotations

from ...errors import UserError


def with_system(messages: list[dict], system_prompt: str | None) -> list[dict]:
    if system_prompt is None or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the [start, end) character spans of each assistant turn that follows a
    user turn (assistant turns before the first user turn, such as a support log's greeting, are context)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans, asked = [], False
    for i, message in enumerate(messages):
        asked = asked or message["role"] == "user"
        if message["role"] != "assistant" or not asked:  # an opening greeting answers nothing: context, no loss
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not text.startswith(upto) or not upto.startswith(prompt):
            raise UserError("this tokenizer's chat template does not render conversations prefix by prefix, "
                            "so assistant turns cannot be located; set task.assistant_only_loss = false")
        spans.append((len(prompt), len(upto)))
    return text, spans


def encode(tokenizer, messages: list[dict], assistant_only: bool = True) -> dict[str, list[int]]:
    """``input_ids`` and ``assistant_masks`` (1 where the token belongs to an assistant turn)."""
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if not assistant_only:
        return {"input_ids": enc["input_ids"], "assistant_masks": [1] * len(enc["input_ids"])}
    mask = [int(any(s <= start < e for s, e in spans)) for start, _ in enc["offset_mapping"]]
    return {"input_ids": enc["input_ids"], "assistant_masks": mask}
