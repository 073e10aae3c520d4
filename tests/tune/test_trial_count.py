"""--trials is the study's total, however many workers share it (``tune/search.py: StopAt``). Real Optuna on a
SQLite study as ``adapterkit tune`` keeps it; the other worker's trial is held running with ``ask``: it finishes
(the worker waits for it instead of starting one more) or its worker dies (its heartbeat goes stale: failed,
re-queued and run here, so the study still reaches its total)."""

from __future__ import annotations

import threading
import time

import optuna

from adapterkit.tune.search import StopAt

X = {"x": optuna.distributions.FloatDistribution(0, 1)}


def objective(trial):
    return trial.suggest_float("x", 0, 1)


def states(study) -> list[str]:
    return sorted(t.state.name for t in study.get_trials(deepcopy=False))


def test_a_worker_waits_for_a_trial_another_worker_runs_instead_of_starting_one_more(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mine = optuna.create_study(study_name="s", storage=url)
    mine.optimize(objective, n_trials=1)  # one finished before
    other = optuna.load_study(study_name="s", storage=url)
    running = other.ask(X)  # the other worker's trial, in flight; it finishes 2 s later
    threading.Timer(2.0, lambda: other.tell(running, 0.5)).start()
    said = []
    mine.optimize(objective, n_trials=5, callbacks=[StopAt(3, poll_seconds=0.1, echo=said.append)])
    assert states(mine) == ["COMPLETE"] * 3  # counting finished trials only, this worker ran 2: 4 in all
    assert len(said) == 1 and said[0].startswith("waiting for 1 trial(s) still running to finish the 3")


def test_a_trial_whose_worker_died_is_rerun_so_the_study_reaches_its_total(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=1,
                                         heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mine = optuna.create_study(study_name="s", storage=storage)
    mine.optimize(objective, n_trials=1)
    dead = optuna.load_study(study_name="s", storage=storage).ask(X)
    storage.record_heartbeat(dead._trial_id)  # its worker beat once, then was killed
    started = time.monotonic()
    stop = StopAt(3, poll_seconds=0.1, deadline=started + 20, echo=lambda _: None)  # the deadline: fail, not hang
    mine.optimize(objective, n_trials=5, callbacks=[stop])
    assert states(mine) == ["COMPLETE"] * 3 + ["FAIL"]  # the dead one failed, its re-queued copy ran here
    assert time.monotonic() - started < 20
