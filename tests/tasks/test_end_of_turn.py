"""The end-of-turn token is trained: for the chat templates of six model families, the token that closes
each assistant turn is inside the loss mask (else a tuned model never learns to stop: trl #696, unsloth #416,
peft #1672). The templates are the families' public ones: Llama 3, Gemma, Qwen 2.5 and Phi-3 as trl ships
them (trl/chat_templates), SmolLM2's from the packaged model, Mistral's written here. Each is applied to the
packaged SmolLM2 tokenizer with the family's special tokens added."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapterkit.tasks.chat.template import DEFAULT_CHAT_TEMPLATE, encode, ensure_chat_template

# mistralai/Mistral-7B-Instruct-v0.1's chat template (tokenizer_config.json)
MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
           "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
           "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
           "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
           "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")

# family: (template source, closing token, bos, eos, special tokens to add)
FAMILIES = {
    "smollm2-chatml": ("packaged", "<|im_end|>", None, None, []),
    "llama3": ("trl:llama3", "<|eot_id|>", "<|begin_of_text|>", "<|eot_id|>",
               ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
    "mistral": (MISTRAL, "</s>", "<s>", "</s>", ["<s>", "</s>", "[INST]", "[/INST]"]),
    "gemma": ("trl:gemma", "<end_of_turn>", "<bos>", "<eos>", ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"]),
    "qwen2.5": ("trl:qwen2_5", "<|im_end|>", None, "<|im_end|>", []),
    "phi3": ("trl:phi3", "<|end|>", "<s>", "<|endoftext|>", ["<s>", "<|user|>", "<|assistant|>", "<|system|>",
                                                             "<|end|>"]),
}
CONVERSATION = [{"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris."},
                {"role": "user", "content": "And of Italy?"},
                {"role": "assistant", "content": "Rome."}]


def family_tokenizer(smollm_dir: str, family: str):
    import trl
    from transformers import AutoTokenizer

    source, _, bos, eos, specials = FAMILIES[family]
    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    if bos:
        tokenizer.bos_token = bos
    if eos:
        tokenizer.eos_token = eos
    if source.startswith("trl:"):
        tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / f"{source[4:]}.jinja").read_text()
    elif source != "packaged":
        tokenizer.chat_template = source
    return tokenizer


def masked_runs(enc) -> list[list[int]]:
    runs, current = [], []
    for token, mask in zip(enc["input_ids"], enc["assistant_masks"]):
        if mask:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_assistant_turn_trains_its_closing_token(smollm_dir, family):
    tokenizer = family_tokenizer(smollm_dir, family)
    closing = tokenizer.convert_tokens_to_ids(FAMILIES[family][1])
    assert closing != tokenizer.unk_token_id
    enc = encode(tokenizer, CONVERSATION)
    runs = masked_runs(enc)
    assert len(runs) == 2, [tokenizer.decode(r) for r in runs]
    for run, answer in zip(runs, ["Paris.", "Rome."]):
        text = tokenizer.decode(run)
        assert text.strip().startswith(answer) and closing in run, (family, text)
        after = run[run.index(closing) + 1:]  # a newline may follow, and Phi-3 ends a conversation with eos
        assert all(t == tokenizer.eos_token_id or not tokenizer.decode([t]).strip() for t in after), (family, text)
    # the user turns' closing tokens (ChatML, Llama 3, Gemma, Phi-3 close every turn) carry no loss
    in_prompt = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if t == closing and not m]
    assert family == "mistral" or in_prompt


def test_a_model_without_a_chat_template_gets_the_default_with_a_warning(smollm_dir, caplog):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    tokenizer.chat_template = None
    with caplog.at_level(logging.WARNING, logger="adapterkit"):
        ensure_chat_template(tokenizer)
    assert tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE and "no chat template" in caplog.text
    runs = masked_runs(encode(tokenizer, CONVERSATION))
    assert len(runs) == 2 and all(tokenizer.eos_token_id in run for run in runs)


def test_a_template_that_does_not_render_turn_by_turn_trains_with_assistant_only_loss_off(smollm_dir, data_files):
    """A template whose generation prompt is not how it renders an assistant turn cannot locate assistant turns: the
    error says to set task.assistant_only_loss = false, and with it off the conversation renders and trains whole."""
    from transformers import AutoTokenizer

    from adapterkit.errors import UserError
    from adapterkit.tasks.chat.task import renderable

    tokenizer = AutoTokenizer.from_pretrained(smollm_dir)
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}ASSISTANT>{% endif %}")
    with pytest.raises(UserError, match="set task.assistant_only_loss = false"):
        encode(tokenizer, CONVERSATION)
    enc = encode(tokenizer, CONVERSATION, assistant_only=False)
    assert all(enc["assistant_masks"]) and tokenizer.decode(enc["input_ids"]).startswith("user: What is")
    from datasets import Dataset

    rows = Dataset.from_dict({"messages": [CONVERSATION], "_where": ["x.jsonl:1"]})
    assert renderable(rows, tokenizer, "raise", "train", assistant_only=False)[1] == 0
