"""An Ollama ``Modelfile`` beside a GGUF export: the chat template in Ollama's Go template form and the
stop tokens (the template's end-of-turn token, e.g. ``PARAMETER stop "<|im_end|>"``).

The tokenizer's Jinja template is probed, not parsed: if it renders conversations as ChatML
(``<|im_start|>role\\ncontent<|im_end|>\\n``, SmolLM2's), the Modelfile carries the ChatML Go template and
the template's default system prompt, if it has one. Other templates get no TEMPLATE line: Ollama then
reads ``tokenizer.chat_template`` from the GGUF file itself; the file says so.
"""

from __future__ import annotations

CHATML = ('{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
          '{{- range .Messages }}{{- if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
          '{{ end }}{{- end }}<|im_start|>assistant\n')


def _chatml(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def is_chatml(tokenizer) -> bool:
    probe = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
             {"role": "assistant", "content": "A"}]
    try:
        return tokenizer.apply_chat_template(probe, tokenize=False) == _chatml(probe)
    except (ValueError, TypeError, AttributeError):
        return False


def default_system(tokenizer) -> str | None:
    """The system prompt a ChatML template inserts when a conversation has none."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "U"}], tokenize=False)
    head = "<|im_start|>system\n"
    if not text.startswith(head):
        return None
    return text[len(head):].split("<|im_end|>", 1)[0]


def _quote(text: str) -> str:
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def modelfile(tokenizer, gguf_name: str) -> str:
    from .merged import turn_end_ids

    lines = ["# Ollama: ollama create NAME -f Modelfile (written by adapterkit export)", f"FROM ./{gguf_name}"]
    if is_chatml(tokenizer):
        lines.append(f"TEMPLATE {_quote(CHATML)}")
        system = default_system(tokenizer)
        if system:
            lines.append(f"SYSTEM {_quote(system)}")
    else:
        lines.append("# no TEMPLATE: the chat template is not ChatML; Ollama reads tokenizer.chat_template from "
                     "the GGUF file")
    stops = [tokenizer.convert_ids_to_tokens(i) for i in turn_end_ids(tokenizer)]
    if tokenizer.eos_token and tokenizer.eos_token not in stops:
        stops.append(tokenizer.eos_token)
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n"
