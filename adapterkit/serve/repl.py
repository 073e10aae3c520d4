"""``adapterkit chat RUN_DIR``: a terminal chat with a finished chat run.

Answers stream token by token and stop at the model's end-of-turn token (or ``--max-tokens``). The
conversation is kept: ``/reset`` forgets it, ``/system TEXT`` sets the system prompt (and resets),
``/exit`` (or end of input) leaves. The safety filter, if given, applies to every turn.
"""

from __future__ import annotations

import sys

from ..errors import UserError
from .answer import Params, input_blocked, job, prompt_ids, stream

HELP = "commands: /reset (forget the conversation), /system TEXT (set the system prompt), /exit"


def chat(run_dir: str, max_tokens: int = 256, temperature: float = 0.0, system: str | None = None, safety=None,
         stdin=None, stdout=None) -> int:
    from .engine import close, open_runs

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    served = open_runs([run_dir])
    model = next(iter(served.values()))
    if model.kind != "chat":
        close(served)
        raise UserError(f"this is a {model.kind} run; chat needs a chat run", where=str(run_dir))
    history: list[dict] = []
    interactive = stdin.isatty()
    print(f"adapterkit chat with {model.id} ({model.base}); {HELP}", file=stdout, flush=True)
    try:
        while True:
            if interactive:
                print("> ", end="", file=stdout, flush=True)
            line = stdin.readline()
            if not line or line.strip() == "/exit":
                return 0
            text = line.strip()
            if not text:
                continue
            if text == "/reset":
                history.clear()
                print("(conversation reset)", file=stdout, flush=True)
                continue
            if text.startswith("/system"):
                system, history = text[len("/system"):].strip() or None, []
                print(f"(system prompt {'set' if system else 'cleared'}; conversation reset)", file=stdout, flush=True)
                continue
            if text.startswith("/"):
                print(f"(unknown command {text.split()[0]}; {HELP})", file=stdout, flush=True)
                continue
            history.append({"role": "user", "content": text})
            messages = ([{"role": "system", "content": system}] if system else []) + history
            history.append({"role": "assistant", "content": _answer(model, messages, max_tokens, temperature,
                                                                    safety, stdout)})
    finally:
        close(served)


def _answer(model, messages, max_tokens: int, temperature: float, safety, stdout) -> str:
    if input_blocked(safety, messages):
        print(safety.refusal, file=stdout, flush=True)
        return safety.refusal
    params = Params(max_tokens, temperature)
    work = job(model, prompt_ids(model, messages), params, streaming=True)
    model.backend.submit(work)
    said, reason = "", None
    try:
        for kind, value in stream(model, work, params, safety):
            if kind == "delta":
                said += value
                print(value, end="", file=stdout, flush=True)
            elif kind == "expired":  # the model was busy past the time limit: no answer
                print(f"(no answer: {value})", end="", file=stdout, flush=True)
            else:
                reason = value[0]
    except KeyboardInterrupt:
        work.cancel.set()
        reason = "interrupted"
    print(file=stdout, flush=True)
    if reason == "length":
        print(f"(cut at {max_tokens} tokens)", file=stdout, flush=True)
    return safety.refusal if reason == "content_filter" else said
