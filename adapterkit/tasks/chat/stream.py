"""Chat data streamed (``data.streaming = true``): the train split is a ``datasets.IterableDataset`` read as it
trains (format, checks and tokens applied row by row), shuffled with a buffer of ``data.shuffle_buffer`` rows
seeded by ``train.seed`` (``data/streaming.py: shuffled``); eval stays in memory (``data/streaming.py``).
A bad row fails the run with its source#row when it is read (``data.on_error = "fail"``), or is dropped
(``"skip"``; not counted, since a stream has no end to count to)."""

from __future__ import annotations

from ...data.files import bad_row
from ...data.formats import chat_format, conversations, read_row
from ...errors import UserError
from ..base import TaskData
from ..rows import checked_rows
from .rows import check_conversation, prepared, table


def stream_data(plan, task: str) -> TaskData:
    from ...data.streaming import stream_train_eval

    data, opts = plan.recipe.data, plan.task_options
    if plan.recipe.train.max_steps <= 0:
        raise UserError("data.streaming = true needs train.max_steps (a stream has no length to count epochs by)",
                        where=f"{plan.where}: train.max_steps")
    train, eval_rows = stream_train_eval(data, plan.where)
    first = next(iter(train))
    found = [k for k in first if not k.startswith("_")]
    fmt = chat_format(found, first, data.format, task=task, where=f"{plan.where}: data.train",
                      messages_column=opts.messages_column)
    eval_rows = conversations(eval_rows, data.format, data.roles, task=task, where=f"{plan.where}: data.eval",
                              messages_column=opts.messages_column)
    eval_rows, skipped = checked_rows(eval_rows, lambda r: check_conversation(r.get("messages")), data.on_error,
                                      "eval")
    roles, column, on_error = dict(data.roles), opts.messages_column, data.on_error

    def one(row):
        conversation = read_row(row, fmt, roles, column)
        problem = conversation.get("_problem") or check_conversation(conversation.get("messages"))
        if problem:
            bad_row(problem, row.get("_where"), on_error)  # raises unless on_error = "skip"
            return {"messages": [], "context_turns": [], "_where": row.get("_where") or ""}
        return {**prepared(conversation["messages"], opts), "_where": row.get("_where") or ""}

    stream = train.map(one, remove_columns=[k for k in first if k not in ("messages", "_where")])
    stream = stream.filter(lambda row: bool(row["messages"]))
    return TaskData(stream, table(eval_rows, opts), None, skipped)


def tokenized_stream(stream, one, plan):
    """Token ids and assistant masks as rows are read, shuffled after tokenizing (as the in-memory path's
    sampler draws from the tokenized split: ``data.streaming.shuffled``); a conversation the chat template
    refuses fails the run with its source#row (``renderable`` checks in-memory splits before training)."""
    from jinja2 import TemplateError

    from ...data.streaming import shuffled

    def checked(row):
        try:
            return one(row)
        except (TemplateError, ValueError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"the chat template cannot render this conversation ({reason})",
                            where=row.get("_where")) from None

    tokens = stream.map(checked, remove_columns=["messages", "_where"]).filter(lambda row: 1 in row["assistant_masks"])
    return shuffled(tokens, plan.recipe.train.seed, plan.recipe.data.shuffle_buffer)
