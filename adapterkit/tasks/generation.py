"""Generation-scored evaluation shared by the text-generating tasks (chat, seq2seq): the ``generate_eval``
option, the scores of greedy answers against the references, and the file the answers are written to.

``task.generate_eval = ["rouge", "bleu", "chrf", "exact_match"]`` names the scores; the computations are the
shipped ``generation_scores`` metric (``adapterkit.metrics``), which runs offline. Keys in metrics.json:
``eval_rouge1``, ``eval_rouge2``, ``eval_rougeL`` (0-1), ``eval_bleu``, ``eval_chrf`` (0-100, sacrebleu's
scale) and ``eval_exact_match`` (0-1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

Score = Literal["rouge", "bleu", "chrf", "exact_match"]
GENERATIONS_FILE = "generations.jsonl"


def generate_eval_field(default: list[str] | None = None):
    return Field(list(default or []), description="scores of greedy answers to the eval split against its "
                                                  "references: rouge, bleu, chrf, exact_match ([]: none)")


def scores(predictions: list[str], references: list[str], names: list[str]) -> dict[str, float]:
    """``eval_<score>`` for each score ``names`` asks for (rouge gives rouge1, rouge2, rougeL)."""
    from ..metrics import load_metric

    if not names or not predictions:
        return {}
    found = load_metric("generation_scores").compute(predictions=predictions, references=references,
                                                     scores=list(dict.fromkeys(names)))
    return {f"eval_{k}": float(v) for k, v in found.items()}


def write_generations(run_dir: Path, rows: list[dict]) -> None:
    """Each eval example's prompt, reference and generated answer, one JSON object a line."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / GENERATIONS_FILE).open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
