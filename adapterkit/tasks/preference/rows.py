"""Preference rows: checked one by one (a bad row names its file:line) and put in one shape for trl.

Paired rows (DPO, ORPO, IPO...): ``prompt`` + ``chosen`` + ``rejected``, each a string or a list of
``{role, content}`` messages; ``prompt`` may be left out when ``chosen`` and ``rejected`` are whole
conversations sharing their opening (trl's implicit prompt). Unpaired rows (KTO): ``prompt`` + ``completion`` +
``label`` (true = desirable); KTO also takes paired rows (each pair is two unpaired rows).

A prompt repeated at the start of every answer (``chosen`` = the prompt's messages + the answer, as conversation
datasets hold them, or prompt text + answer text) is removed from the answers, with a count in the log: trl
puts the prompt before each answer, so the model would otherwise be tuned on the prompt twice.

With a chat template, strings become messages (the prompt a user turn, an answer an assistant turn), so the
model is tuned in the format it answers in; without one they stay text and trl appends the end-of-sequence token.
"""

from __future__ import annotations

import logging

from ... import distributed

log = logging.getLogger("adapterkit")
ROLES = {"system", "user", "assistant"}
PAIRED = ("prompt", "chosen", "rejected")
UNPAIRED = ("prompt", "completion", "label")


def _messages_problem(value, name: str) -> str | None:
    if isinstance(value, str):
        return None if value.strip() else f"'{name}' is empty"
    if not isinstance(value, list) or not value:
        return f"'{name}' must be a string or a non-empty list of {{role, content}} messages"
    for k, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return f"'{name}' message {k + 1} needs role (system|user|assistant) and string content"
    return None


def row_kind(row: dict) -> str | None:
    if "chosen" in row or "rejected" in row:
        return "paired"
    if "completion" in row or "label" in row:
        return "unpaired"
    return None


def check_row(row: dict, unpaired_ok: bool) -> str | None:
    """The row's problem in a few words, or None."""
    kind = row_kind(row)
    if kind is None:
        found = ", ".join(sorted(k for k in row if not k.startswith("_"))) or "none"
        wanted = "prompt+chosen+rejected" + (" or prompt+completion+label" if unpaired_ok else "")
        return f"a preference row needs the columns {wanted}; found {found}"
    if kind == "unpaired":
        if not unpaired_ok:
            return ("prompt+completion+label is KTO's unpaired format; set task.loss = \"kto\", or give "
                    "prompt+chosen+rejected")
        if not isinstance(row.get("label"), bool):
            return "'label' must be true (desirable) or false (undesirable)"
        return _messages_problem(row.get("prompt"), "prompt") or _messages_problem(row.get("completion"), "completion")
    for name in ("chosen", "rejected"):
        problem = _messages_problem(row.get(name), name)
        if problem:
            return problem
    if "prompt" in row:
        return _messages_problem(row["prompt"], "prompt")
    if isinstance(row["chosen"], str) or isinstance(row["rejected"], str):
        return "'prompt' is missing (it may only be left out when chosen and rejected are whole conversations)"
    return None


def _answers(row: dict) -> tuple[str, ...]:
    return ("chosen", "rejected") if row_kind(row) == "paired" else ("completion",)


def _repeats(prompt, answer) -> int | None:
    """How much of ``answer`` (messages or characters) repeats ``prompt`` before the answer itself; None if not."""
    if isinstance(answer, list):
        opening = _as_messages(prompt, "user")
        same = [{"role": m["role"], "content": m["content"]} for m in answer[:len(opening)]] == opening
        return len(opening) if same and len(answer) > len(opening) else None
    rest = answer[len(prompt):] if isinstance(prompt, str) and isinstance(answer, str) and answer.startswith(prompt) \
        else ""
    # at a word's end: prompt "A" does not repeat in "Apple", "Capital of France?" does in "Capital of France? Paris"
    if rest.strip() and (rest[0].isspace() or not prompt[-1].isalnum()):
        return len(prompt)
    return None


def without_repeated_prompts(rows: list[dict], split: str) -> list[dict]:
    """Rows whose every answer opens with the prompt get their answers without it (see the module docstring)."""
    out, repeated = [], 0
    for row in rows:
        cut = [_repeats(row["prompt"], row[name]) for name in _answers(row)] if "prompt" in row else [None]
        if None in cut:
            out.append(row)
            continue
        repeated += 1
        answers = {name: row[name][n:] if isinstance(row[name], list) else row[name][n:].lstrip()
                   for name, n in zip(_answers(row), cut)}
        out.append({**row, **answers})
    if repeated and distributed.is_main():
        log.warning("%d of %d %s rows repeat their prompt at the start of every answer; the repeat is removed "
                    "(trl puts the prompt before each answer itself)", repeated, len(rows), split)
    return out


def _as_messages(value, role: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{"role": m["role"], "content": m["content"]} for m in value]


def normalised(rows: list[dict], chat: bool, unpair: bool) -> dict[str, list]:
    """Columns for a ``datasets.Dataset``, every row in one shape (messages with a chat template, else text);
    ``unpair`` (KTO): a pair becomes a desirable and an undesirable row. ``row``: the index in ``rows`` each came
    from (trl keeps it through its tokenizing and filtering: ``kept``)."""
    from trl.data_utils import extract_prompt

    def text(value, role):
        if chat:
            return _as_messages(value, role)
        return value if isinstance(value, str) else "\n".join(m["content"] for m in value)

    columns: dict[str, list] = {key: [] for key in (*(UNPAIRED if unpair else PAIRED), "row")}
    for index, row in enumerate(rows):
        if row_kind(row) == "paired" and "prompt" not in row:
            row = {**row, **extract_prompt({"chosen": row["chosen"], "rejected": row["rejected"]})}
        prompt = text(row["prompt"], "user")
        if not unpair:
            columns["prompt"].append(prompt)
            columns["chosen"].append(text(row["chosen"], "assistant"))
            columns["rejected"].append(text(row["rejected"], "assistant"))
            columns["row"].append(index)
            continue
        answers = ([(row["chosen"], True), (row["rejected"], False)] if row_kind(row) == "paired"
                   else [(row["completion"], row["label"])])
        for answer, label in answers:
            columns["prompt"].append(prompt)
            columns["completion"].append(text(answer, "assistant"))
            columns["label"].append(label)
            columns["row"].append(index)
    return columns


def kept(rows: list[dict], dataset) -> list[dict]:
    """The ``rows`` (``normalised``'s source) that the trainer's ``dataset`` still holds after trl left some out (DPO
    and KTO drop rows whose prompt alone fills max_length): run.json's counts, eval and samples cover those."""
    columns = getattr(dataset, "column_names", None) or []
    if "row" not in columns:
        return rows
    return [rows[i] for i in sorted(set(dataset["row"]))]
