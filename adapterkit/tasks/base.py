"""What a task is: it owns its data format, its model head, its trainer and its metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


class TaskOptions(BaseModel):
    """Base for a task's ``[task]`` options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class TaskData:
    """Examples after loading and validation, before tokenization."""

    train: Any  # datasets.Dataset
    eval: Any  # datasets.Dataset
    labels: list[str] | None = None  # label names for classification / tagging
    skipped_rows: int = 0


class Task(Protocol):
    """Optional: ``check_model(options, model_config) -> str | None``, a reason to refuse a model in preflight;
    ``zero_shot_auto_class(config) -> str | None`` and ``zero_shot_evaluate(plan, model,
    tokenizer, data) -> metrics``, for base models whose zero-shot baseline is not the fresh task head
    (classification asks a causal LM through a prompt); see ``adapterkit.zeroshot``."""

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
        """A transformers Trainer (or trl SFTTrainer) ready to train and evaluate."""

    def evaluate(self, plan: Any, trainer: Any, data: TaskData, run_dir: Path) -> dict[str, Any]:
        """Metrics for metrics.json; may write extra files (per-label report, samples) into run_dir."""
