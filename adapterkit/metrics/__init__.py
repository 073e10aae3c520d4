"""Metric modules shipped with the package, loaded through ``evaluate``'s API by path.

Hub metrics (``evaluate.load("seqeval")``) need the network; these folders hold evaluate-compatible
modules that load offline.
"""

from __future__ import annotations

from pathlib import Path


def load_metric(name: str):
    """``classification_report``, ``seqeval_entities`` or ``generation_scores``, via ``evaluate.load`` on the module's folder."""
    import evaluate

    folder = Path(__file__).parent / name
    if not (folder / f"{name}.py").is_file():
        raise ValueError(f"no shipped metric {name!r}")
    return evaluate.load(str(folder))
