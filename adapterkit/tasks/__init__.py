"""The task registry: built-in tasks listed here, plus entry points in ``adapterkit.tasks``."""

from __future__ import annotations

from ..registry import Registry
from .base import Task, TaskData, TaskOptions


def _builtin() -> list[Task]:
    from . import chat, classification, lm, ner, preference, seq2seq

    return [chat.TASK, classification.TASK, ner.TASK, preference.TASK, seq2seq.TASK, lm.TASK]


TASKS: Registry[Task] = Registry("task", "adapterkit.tasks", _builtin)

__all__ = ["TASKS", "Task", "TaskData", "TaskOptions"]
