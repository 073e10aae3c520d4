"""--trials is the study's total, however many workers share it: a worker stops starting trials once the finished
trials and those still running in other workers reach it (``tune/search.py: stop_at``). Real Optuna, a SQLite
study as ``adapterkit tune`` keeps it, the other worker's trial held running with ``ask``."""

from __future__ import annotations

import optuna

from adapterkit.tune.search import stop_at


def test_a_worker_does_not_start_a_trial_another_worker_is_already_running_towards_the_total(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mine = optuna.create_study(study_name="s", storage=url)
    mine.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)  # one finished before
    other = optuna.load_study(study_name="s", storage=url)
    running = other.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # the other worker's trial, in flight
    mine.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=5, callbacks=[stop_at(3)])
    other.tell(running, 0.5)
    done = mine.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 3  # 1 before + 1 here + the other worker's; counting finished trials only, this worker ran 2
