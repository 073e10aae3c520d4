"""A chat split's rows: the conversation check, and conversations as the ``datasets`` table the task trains on
(role and content only, the system prompt added, cut cheaply before the tokenizer sees a giant one)."""

from __future__ import annotations

import logging

from ... import distributed
from ...errors import UserError
from ..rows import clip_pieces, warn_truncated
from .template import with_system

log = logging.getLogger("adapterkit")

ROLES = {"system", "user", "assistant"}


def check_conversation(messages) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list of {role, content}"
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return f"message {k + 1} needs role (system|user|assistant) and string content"
    if not any(m["role"] == "assistant" for m in messages):
        return "conversation has no assistant turn"
    first_user = next((k for k, m in enumerate(messages) if m["role"] == "user"), len(messages))
    if not any(m["role"] == "assistant" for m in messages[first_user:]):
        return "conversation has no assistant turn after a user turn (an opening one is context, not an answer)"
    for k, m in enumerate(messages[first_user:], first_user + 1):  # an empty answer would teach the model to say nothing
        if m["role"] == "assistant" and not m["content"].strip() and m.get("weight") != 0:
            return f"message {k} is an empty assistant answer"
    if all(m.get("weight") == 0 for m in messages[first_user:] if m["role"] == "assistant"):
        return "every assistant turn after a user turn has weight 0: nothing to train on"
    return None


def prepared(messages: list[dict], opts) -> dict:
    """``messages``: role and content only, ``task.system_prompt`` added, cut at max_length * CHARS_PER_TOKEN
    characters; ``context_turns``: the indices of the assistant turns the data weighted 0 (rendered, not trained)."""
    messages = with_system(messages, opts.system_prompt)
    contents = clip_pieces([m["content"] for m in messages], opts.max_length)
    return {"messages": [{"role": m["role"], "content": c} for m, c in zip(messages, contents)],
            "context_turns": [k for k, m in enumerate(messages) if m.get("weight") == 0]}


def table(rows: list[dict], opts):
    from datasets import Dataset, Features, List, Value

    features = Features({"messages": List({"role": Value("string"), "content": Value("string")}),
                         "context_turns": List(Value("int32")), "_where": Value("string")})
    return Dataset.from_list([{**prepared(r["messages"], opts), "_where": r.get("_where") or ""} for r in rows],
                             features=features)


def answered(tokens, split: str, max_length: int, where: str, warn: bool = True):
    """(the tokenized conversations that keep an assistant token within ``max_length``, their indices). The others
    carry no loss: they are left out, and the log says how many (and how many reach the limit at all); a split
    left empty is refused (trl would fail later with a bare StopIteration)."""
    kept = [i for i, mask in enumerate(tokens["assistant_masks"]) if 1 in mask]
    if len(tokens) and not kept:
        raise UserError(f"task.max_length = {max_length} cuts every {split} conversation before its first "
                        "assistant token; raise task.max_length", where=where)
    if warn:
        warn_truncated(tokens, max_length)
    if len(kept) == len(tokens):
        return tokens, kept
    if warn and distributed.is_main():
        log.warning("%d of %d %s conversations are cut by task.max_length = %d before their first assistant token; "
                    "they are left out (raise task.max_length to keep them)", len(tokens) - len(kept), len(tokens),
                    split, max_length)
    return tokens.select(kept), kept
