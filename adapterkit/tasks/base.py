"""What a task is: it owns its data format, its model head, its trainer and its metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..recipe import Checked


class TaskOptions(Checked):
    """Base for a task's ``[task]`` options: unknown keys are errors, true/false is no number."""


@dataclass
class TaskData:
    """Examples after loading and validation, before tokenization."""

    train: Any  # datasets.Dataset; None for an evaluate-only trainer
    eval: Any  # datasets.Dataset
    labels: list[str] | None = None  # label names for classification / tagging
    skipped_rows: int = 0

    def for_eval(self) -> TaskData:
        """The same data without a train split: ``build_trainer`` then builds an evaluate-only trainer."""
        return TaskData(None, self.eval, self.labels, self.skipped_rows)


class Task(Protocol):
    """Optional: ``check_model(options, model_config) -> str | None``, a reason to refuse a model in preflight;
    ``zero_shot_auto_class(config) -> str | None`` and ``zero_shot_evaluate(plan, model,
    tokenizer, data) -> metrics``, for base models whose zero-shot baseline is not the fresh task head
    (classification asks a causal LM through a prompt); see ``adapterkit.zeroshot``. ``padding_free(plan)
    -> bool``: the task trains on padding-free rows (one row of whole examples per pass), which the memory
    planner sizes differently. ``ship_tokenizer(tokenizer, options)``: a finished run's tokenizer, loaded to use
    its model (generate, serve, chat, export), made to prompt it as training did (chat: ``task.system_prompt``)."""

    name: str
    summary: str  # one line: what it trains, data columns
    options: type[TaskOptions]
    auto_class: str  # transformers Auto class name for the model head
    peft_task_type: str
    primary_metric: str  # key in metrics.json the comparison ranks by, e.g. "eval_macro_f1"
    greater_is_better: bool

    def load_data(self, plan: Any) -> TaskData: ...

    def model_kwargs(self, data: TaskData) -> dict[str, Any]:
        """Extra from_pretrained kwargs (num_labels, id2label...)."""

    def build_trainer(self, plan: Any, model: Any, tokenizer: Any, data: TaskData, run_dir: Path) -> Any:
        """A transformers Trainer (or trl SFTTrainer) ready to train and evaluate; evaluate-only when
        ``data.train`` is None (``TaskData.for_eval``)."""

    def evaluate(self, plan: Any, trainer: Any, data: TaskData, run_dir: Path) -> dict[str, Any]:
        """Metrics for metrics.json; may write extra files (per-label report, samples) into run_dir."""
