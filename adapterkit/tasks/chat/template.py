"""Tokenize a conversation with the tokenizer's own chat template and mark the assistant tokens.

Works for any template whose rendering of a conversation prefix is a prefix of the whole rendering
(true of the common templates): the characters each assistant turn adds are found by rendering the
conversation up to that turn, and tokens are marked through the fast tokenizer's offsets. The turn's closing
token is marked too, so the model learns to stop (tests/tasks/test_end_of_turn.py, six template families).
"""

from __future__ import annotations

import json
import logging
import os

from ...errors import UserError

log = logging.getLogger("adapterkit")

# Zephyr's template: role headers as plain text, each turn closed by the tokenizer's eos token, so a model
# trained with it stops where a turn ends. Given to a tokenizer that has no chat template (README: Data formats).
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def ensure_chat_template(tokenizer) -> None:
    """Give a tokenizer without a chat template the default one (with a warning): base models have none."""
    if getattr(tokenizer, "chat_template", None):
        return
    if tokenizer.eos_token is None:
        raise UserError("the model's tokenizer has neither a chat template nor an eos token to end turns with; "
                        "use a model with a chat template (an instruct checkpoint)")
    log.warning("the model has no chat template; using adapterkit's default (Zephyr-style <|user|>/<|assistant|> "
                "headers, turns ended by eos %r), saved with the adapter", tokenizer.eos_token)
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE


def with_system(messages: list[dict], system_prompt: str | None) -> list[dict]:
    if system_prompt is None or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def template_with_system(template: str, system_prompt: str) -> str:
    """``template`` opening every conversation that has no system message with ``system_prompt``, as
    ``with_system`` does to the training rows: so whatever renders the run's template (generate, serve, chat,
    a merged or GGUF export, Ollama's SYSTEM line) prompts the model the way it was trained. A JSON string is a
    valid Jinja string literal (its escapes are Python's); the rest of the template is left as it is."""
    literal = json.dumps(system_prompt, ensure_ascii=False)
    return ("{% if not messages or messages[0]['role'] != 'system' %}{% set messages = [{'role': 'system', "
            f"'content': {literal}}}] + messages %}}{{% endif %}}" + template)


def ship_tokenizer(tokenizer, system_prompt: str | None) -> None:
    """Make ``task.system_prompt`` the chat template's own default (``template_with_system``), once: at training, so
    the template saved with the adapter carries it, and again when a finished run is loaded (generate, serve, chat,
    export), which leaves a template that has it as it is and gives it to runs saved before training did."""
    template = getattr(tokenizer, "chat_template", None)
    if system_prompt is None or not isinstance(template, str):
        return
    opening = template_with_system("", system_prompt)
    if not template.startswith(opening):
        tokenizer.chat_template = opening + template


def turn_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int, int]]]:
    """The rendered conversation and (message index, start, end) character spans of each assistant turn that follows
    a user turn (assistant turns before the first user turn, such as a support log's greeting, are context)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans, asked = [], False
    for i, message in enumerate(messages):
        asked = asked or message["role"] == "user"
        if message["role"] != "assistant" or not asked:  # an opening greeting answers nothing: context, no loss
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        # The turn ends where its rendering and the whole conversation's part: its closing token (<|im_end|>,
        # <|eot_id|>, </s>, <end_of_turn>, <|end|>) is in both, a closing-only suffix (Phi-3 ends a conversation
        # with eos) only in the last turn's.
        end = len(os.path.commonprefix([text, upto]))
        if not text.startswith(prompt) or not upto.startswith(prompt) or end <= len(prompt):
            raise UserError("this tokenizer's chat template does not render conversations prefix by prefix, "
                            "so assistant turns cannot be located; set task.assistant_only_loss = false")
        spans.append((i, len(prompt), end))
    return text, spans


def assistant_spans(tokenizer, messages: list[dict], context=()) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the [start, end) character spans of the assistant turns trained on:
    ``turn_spans``' but those at the indices in ``context`` (turns the data weighted 0, as OpenAI's fine-tuning
    format does)."""
    text, spans = turn_spans(tokenizer, messages)
    return text, [(start, end) for i, start, end in spans if i not in context]


def encode(tokenizer, messages: list[dict], assistant_only: bool = True, context=()) -> dict[str, list[int]]:
    """``input_ids`` and ``assistant_masks``: 1 where the token belongs to an assistant turn not in ``context``, or,
    with ``assistant_only`` off, to any part of the conversation but those context turns."""
    if assistant_only:  # the turns trained on
        text, marked = assistant_spans(tokenizer, messages, context)
    elif context:  # the turns left out
        text, spans = turn_spans(tokenizer, messages)
        marked = [(start, end) for i, start, end in spans if i in context]
    else:
        text, marked = tokenizer.apply_chat_template(messages, tokenize=False), []
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    # a token counts when it lies wholly in a turn: where a turn's rendering parts from the whole text inside a
    # token (Phi-3's closing eos "<|endoftext|>" against the next "<|user|>"), that token is the next turn's
    inside = [any(s <= start and stop <= e for s, e in marked) for start, stop in enc["offset_mapping"]]
    return {"input_ids": enc["input_ids"], "assistant_masks": [int(mark == assistant_only) for mark in inside]}
