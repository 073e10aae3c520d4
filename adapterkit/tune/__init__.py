"""``adapterkit tune``: hyper-parameter search on Optuna, each trial planned first and run in its own process.

Layout of the output folder::

    DIR/study.db                   the Optuna study (SQLite): --resume and other workers reopen it
    DIR/runs/trial-<n>/            each started trial's run directory (as ``adapterkit run`` writes it)
    DIR/logs/trial-<n>.out/.err    its stdout and stderr
    DIR/results/trial-<n>.json     one result per trial, schema in ``adapterkit.results`` ("skipped": the
                                   planner refused it, "pruned": stopped early by the pruner)
    DIR/report.md, report.html, *.png, best_recipe.toml   the report (``tune.report``)

``space`` reads and checks the search space, ``study`` creates or reopens the study, ``search`` runs the
trials, ``trial`` is the process of one trial, ``report`` writes the report.
"""

from .search import tune

__all__ = ["tune"]
