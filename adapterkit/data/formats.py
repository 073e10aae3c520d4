"""Conversation formats, detected from a file's columns (``data.format`` overrides) and read as OpenAI
``messages`` (``[{"role": "system"|"user"|"assistant", "content": str}]``), which the chat task trains on.

- ``messages``: ``messages`` = ``[{role, content}]`` (OpenAI), read as is.
- ``sharegpt``: ``conversations`` (or ``messages``) = ``[{from, value}]`` (or ``[{role, content}]``, as many hub
  datasets store them), optional ``system``; roles mapped by ``ROLES`` plus ``data.roles``.
- ``alpaca``: ``instruction``, ``input``, ``output``, optional ``system`` and ``history`` (``[[q, a], ...]``):
  system, the history's turns, user = instruction + "\\n" + input, assistant = output.
- ``prompt_completion``: ``prompt``, ``completion`` (strings, or message lists as trl writes them).
- ``preference``: ``prompt`` + ``chosen`` + ``rejected``, or ``prompt`` + ``completion`` + ``label``: the
  ``preference`` task's rows; the chat task names that task.
- ``text``: ``text``, plain text for continued pre-training (the ``lm`` task).

An assistant turn with ``"weight": 0`` (OpenAI's fine-tuning format; sharegpt files use it too) is context: it
is rendered but not trained on; a weight on other turns changes nothing (only assistant turns are trained).

Content given as a list of parts (``[{"type": "text", "text"|"value": ...}]``: OpenAI's multimodal shape,
LLaMA-Factory's v1 files) reads as its text parts joined by newlines; a non-text part is a bad row. Tool
turns (sharegpt ``function_call``/``observation``, OpenAI ``tool`` or ``tool_calls``) are bad rows, named
in one line, unless ``data.roles`` maps them to a role (e.g. ``{observation = "user"}``).
"""

from __future__ import annotations

from ..errors import UserError

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
TOOL_ROLES = {"function_call", "observation", "tool", "function", "tool_call", "ipython"}
DESCRIPTIONS = {
    "messages": "messages [{role, content}]",
    "sharegpt": "conversations [{from, value}] (sharegpt)",
    "alpaca": "instruction + input + output (alpaca)",
    "prompt_completion": "prompt + completion",
    "preference": "prompt + chosen + rejected (or prompt + completion + label)",
    "text": "text",
}
CHAT_FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion")


def detect(columns: list[str], first: dict | None = None) -> str | None:
    """The format a file's columns say, or None. ``first`` (a row) tells sharegpt lists stored as ``messages``."""
    cols = set(columns)
    if "conversations" in cols:
        return "sharegpt"
    if "messages" in cols:
        turns = (first or {}).get("messages")
        sharegpt = isinstance(turns, list) and turns and isinstance(turns[0], dict) and "from" in turns[0]
        return "sharegpt" if sharegpt else "messages"
    if {"chosen", "rejected"} <= cols or {"prompt", "completion", "label"} <= cols:
        return "preference"
    if {"instruction", "output"} <= cols:
        return "alpaca"
    if {"prompt", "completion"} <= cols:
        return "prompt_completion"
    if "text" in cols:
        return "text"
    return None


class BadRow(ValueError):
    """A row this format cannot read; its message is the row's problem."""


def text_of(content, where: str = "content") -> str:
    """A message's content as text: a string, or the text parts of a list of parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
        texts = []
        for part in content:
            kind = part.get("type", "text")
            text = part.get("text", part.get("value"))
            if kind != "text" or not isinstance(text, str):
                raise BadRow(f"{where} holds a {kind!r} part; only text parts can be trained")
            texts.append(text)
        return "\n".join(texts)
    raise BadRow(f"{where} must be a string or a list of text parts, got {type(content).__name__}")


def _turn(role, content, roles: dict[str, str], k: int, weight=None) -> dict:
    mapped = roles.get(role) if isinstance(role, str) else None
    if mapped is None:
        if role in TOOL_ROLES:
            raise BadRow(f"message {k + 1} is a tool turn ({role!r}); tool calls are not trained yet: drop such rows "
                         f"(data.on_error = \"skip\") or map the role with data.roles = {{{role} = \"user\"}}")
        raise BadRow(f"message {k + 1} needs role system|user|assistant, got {role!r} (known: "
                     f"{', '.join(sorted(roles))}; data.roles maps others, e.g. {{bot = \"assistant\"}})")
    turn = {"role": mapped, "content": text_of(content, f"message {k + 1}'s content")}
    if weight is not None and weight not in (0, 1):  # 0 or 1 (false and true too)
        raise BadRow(f"message {k + 1}'s weight must be 0 (context, not trained) or 1, got {weight!r}")
    if weight == 0 and mapped == "assistant":  # OpenAI's fine-tuning format: an assistant turn not to learn
        turn["weight"] = 0
    return turn


def _messages(turns, roles: dict[str, str], role_key: str, content_key: str, column: str) -> list[dict]:
    if not isinstance(turns, list) or not turns:
        raise BadRow(f"{column!r} must be a non-empty list of {{{role_key}, {content_key}}}")
    out = []
    for k, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise BadRow(f"message {k + 1} of {column!r} is not an object")
        if turn.get("tool_calls"):
            raise BadRow(f"message {k + 1} carries tool_calls; tool calls are not trained yet: drop such rows "
                         "(data.on_error = \"skip\")")
        out.append(_turn(turn.get(role_key), turn.get(content_key), roles, k, turn.get("weight")))
    return out


def _as_turns(value, role: str, roles: dict[str, str], column: str) -> list[dict]:
    """A prompt or completion: a string (one turn of ``role``) or a list of messages (trl's conversational form)."""
    if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
        return _messages(value, roles, "role", "content", column)
    return [{"role": role, "content": text_of(value, column)}]


def to_messages(row: dict, fmt: str, roles: dict[str, str], messages_column: str = "messages") -> list[dict]:
    """The row as OpenAI messages (raises ``BadRow``)."""
    if fmt == "messages":
        return _messages(row.get(messages_column), roles, "role", "content", messages_column)
    if fmt == "sharegpt":
        column = "conversations" if "conversations" in row else "messages"
        first = (row.get(column) or [None])[0] if isinstance(row.get(column), list) else None
        # many hub datasets keep OpenAI {role, content} turns under sharegpt's column name
        keys = ("role", "content") if isinstance(first, dict) and "from" not in first and "role" in first else \
            ("from", "value")
        turns = _messages(row.get(column), roles, *keys, column)
        system = row.get("system")
        if system and not (turns and turns[0]["role"] == "system"):
            turns.insert(0, {"role": "system", "content": text_of(system, "system")})
        return turns
    if fmt == "alpaca":
        instruction, extra, output = row.get("instruction"), row.get("input"), row.get("output")
        if not isinstance(instruction, str) or not isinstance(output, str):
            raise BadRow("alpaca rows need string 'instruction' and 'output'")
        turns = [{"role": "system", "content": row["system"]}] if isinstance(row.get("system"), str) and \
            row["system"].strip() else []
        for pair in row.get("history") or []:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
                raise BadRow("'history' must be a list of [question, answer] pairs of strings")
            turns += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        query = instruction + ("\n" + extra if isinstance(extra, str) and extra.strip() else "")
        return [*turns, {"role": "user", "content": query}, {"role": "assistant", "content": output}]
    if fmt == "prompt_completion":
        return _as_turns(row.get("prompt"), "user", roles, "prompt") + \
            _as_turns(row.get("completion"), "assistant", roles, "completion")
    raise BadRow(f"format {fmt!r} holds no conversations")


def chat_format(found: list[str], first: dict | None, fmt: str, *, task: str, where: str,
                messages_column: str = "messages") -> str:
    """The conversation format of rows with columns ``found`` (``fmt`` "auto": detected); rows of another
    task's format, or of none, are refused in one line that says what was found and what to do."""
    if fmt == "auto":
        fmt = "messages" if messages_column in found else detect(found, first)
    if fmt == "preference":
        raise UserError(f"these rows are preference pairs ({', '.join(found)}); train them with task 'preference' "
                        f"(task '{task}' reads conversations)", where=where)
    if fmt == "text":
        raise UserError(f"these rows are plain text (column 'text'); train them with task 'lm' (continued "
                        f"pre-training), or give task '{task}' conversations", where=where)
    if fmt not in CHAT_FORMATS:
        expected = "; ".join(DESCRIPTIONS[f] for f in CHAT_FORMATS)
        raise UserError(f"task {task!r} reads conversations, but the data has columns {', '.join(found) or 'none'}; "
                        f"expected one of: {expected}. Map yours with data.columns (e.g. "
                        f"{{messages = \"{found[0] if found else '...'}\"}}) and data.format", where=where)
    return fmt


def read_row(row: dict, fmt: str, roles: dict[str, str], messages_column: str = "messages") -> dict:
    """``{"messages", "_where"}``, or ``{"_where", "_problem"}`` for a row that cannot be read, which the task's
    row check reports (with its file:line) or skips."""
    if row.get("_problem"):
        return row
    try:
        return {"messages": to_messages(row, fmt, {**ROLES, **roles}, messages_column), "_where": row.get("_where")}
    except BadRow as err:
        return {"_where": row.get("_where"), "_problem": str(err)}


def conversations(rows: list[dict], fmt: str, roles: dict[str, str], *, task: str, where: str,
                  messages_column: str = "messages") -> list[dict]:
    """Rows read as conversations (``read_row``), their format detected from the columns unless ``fmt`` says."""
    from .columns import columns_of, source_of

    if not rows:
        return rows
    fmt = chat_format(columns_of(rows), rows[0], fmt, task=task, where=f"{where} ({source_of(rows)})",
                      messages_column=messages_column)
    return [read_row(row, fmt, roles, messages_column) for row in rows]
