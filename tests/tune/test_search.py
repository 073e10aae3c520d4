"""``adapterkit tune`` end to end on a tiny BERT: a real search whose trials run in their own processes, one
of them refused by the planner on a small profile; the pruner's callback; resume after kill -9 of the
search keeps the finished trials; --budget stops starting trials; the report renders in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import tomli_w
from conftest import REPO, tiny_recipe

from adapterkit import results
from adapterkit.cli import main
from adapterkit.plan import load_recipe
from adapterkit.tune.study import STUDY_NAME, storage_url
from adapterkit.tune.trial import PRUNED_AT, ReportToTrial

pytestmark = pytest.mark.integration


def _recipe(folder: Path, tiny_bert_dir, data_files, tune: dict, **sections) -> Path:
    (folder / "profiles").mkdir(exist_ok=True)
    (folder / "profiles" / "small.toml").write_text('device = "cpu"\nmemory_gb = 1.0\nprecision = "fp32"\n'
                                                    "bnb_4bit = false\n")
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files, hardware={"profile": "small"},
                         **sections)
    recipe["tune"] = tune
    (folder / "tiny.toml").write_text(tomli_w.dumps(recipe))
    return folder / "tiny.toml"


def _study(out: Path):
    return optuna.load_study(study_name=STUDY_NAME, storage=storage_url(out))


@pytest.fixture(scope="module")
def search(tmp_path_factory, tiny_bert_dir, data_files) -> Path:
    folder = tmp_path_factory.mktemp("tune")
    # batch 4096 needs ~1.8 GiB by the planner's estimate: over the 1 GiB profile, so never started
    path = _recipe(folder, tiny_bert_dir, data_files, {"method": {"name": ["lora", "ia3"], "r": [2, 4]},
                                                        "train": {"batch_size": [8, 4096]}},
                   train={"max_steps": 4, "learning_rate": 1e-3})
    assert main(["tune", str(path), "--trials", "4", "--space", "train.learning_rate=1e-4..1e-2:log",
                 "--output", str(folder / "out")]) == 0
    return folder / "out"


def test_trials_are_planned_run_and_recorded(search):
    study = _study(search)
    trials = study.get_trials()
    assert len(trials) == 4
    infeasible = [t for t in trials if t.user_attrs.get("infeasible")]
    ran = [t for t in trials if not t.user_attrs.get("infeasible")]
    assert infeasible and ran
    for t in infeasible:  # recorded with its estimate, never started: no run directory, no log
        assert t.params["train.batch_size"] == 4096 and t.state == optuna.trial.TrialState.PRUNED
        assert "does not fit" in t.user_attrs["infeasible"] and t.user_attrs["estimate_mib"] > 1024
        assert not (search / "runs" / f"trial-{t.number:04d}").exists()
        result = json.loads((search / "results" / f"trial-{t.number:04d}.json").read_text())
        assert result["status"] == "skipped" and "does not fit" in result["error"] and results.check(result) == []
    for t in ran:
        assert t.state == optuna.trial.TrialState.COMPLETE and t.params["train.batch_size"] == 8
        assert sorted(t.intermediate_values) == [1, 2, 3, 4]  # eval every max_steps // 4 steps, reported
        result = json.loads((search / "results" / f"trial-{t.number:04d}.json").read_text())
        assert results.check(result) == [] and result["status"] == "ok"
        assert result["quality"]["eval_macro_f1"] == t.value and result["steps"] == 4
        assert result["method"] == t.params["method.name"] and (search / result["run_dir"] / "run.json").is_file()
        assert ("method.r" in t.params) == (t.params["method.name"] == "lora")
        assert result["options"].get("r") == t.params.get("method.r")


def test_best_recipe_is_ready_to_run(search):
    best = _study(search).best_trial
    recipe = load_recipe(search / "best_recipe.toml")
    assert recipe.method.name == best.params["method.name"]
    assert recipe.train.learning_rate == pytest.approx(best.params["train.learning_rate"])
    assert recipe.tune == {}
    md = (search / "report.md").read_text()
    assert f"Best: trial {best.number}" in md and "1 refused by the planner" in md or "2 refused" in md
    assert {"history.png", "parallel.png", "pareto_memory.png", "pareto_time.png"} <= {p.name for p in search.glob("*.png")}


def test_a_pruned_trial_stops_training():
    from transformers import TrainerControl, TrainerState

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial, state = study.ask(), TrainerState()
    callback, control = ReportToTrial(trial, "eval_macro_f1"), TrainerControl()
    state.global_step = 2
    callback.on_evaluate(None, state, control, metrics={"eval_macro_f1": 0.7})
    assert not control.should_training_stop and PRUNED_AT not in study.trials[0].user_attrs
    state.global_step = 4
    callback.on_evaluate(None, state, control, metrics={"eval_macro_f1": 0.3})
    assert control.should_training_stop and study.trials[0].user_attrs[PRUNED_AT] == 4
    assert study.trials[0].intermediate_values == {2: 0.7, 4: 0.3}


def _trial_processes(out: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"adapterkit.tune.trial" in cmd and str(out).encode() in cmd:
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_resume_after_kill_keeps_finished_trials_and_budget_stops(tmp_path, tiny_bert_dir, data_files):
    path = _recipe(tmp_path, tiny_bert_dir, data_files, {"train": {"learning_rate": "1e-4..1e-2:log"}},
                   train={"max_steps": 2})
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "adapterkit", "tune", str(path), "--trials", "3", "--output", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "results" / "trial-0000.json"
    deadline = time.time() + 300
    while not (first.is_file() and _trial_processes(out)) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first.is_file() and proc.poll() is None, "the first trial did not finish in time"
    kept = first.read_bytes()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 120  # the orphaned trial process notices and stops itself
    while _trial_processes(out) and time.time() < deadline:
        time.sleep(0.5)
    assert not _trial_processes(out)
    assert main(["tune", str(path), "--trials", "3", "--output", str(out)]) == 2  # a search is there: --resume
    assert main(["tune", str(path), "--trials", "3", "--output", str(out), "--resume", "--budget", "1s"]) == 0
    assert first.read_bytes() == kept
    trials = _study(out).get_trials()
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [t.number for t in done] == [0, 2]  # trial 0 kept; the budget let one more start, not two
    assert trials[1].state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL)
    assert len(list((out / "results").glob("*.json"))) == 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(search, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
           (search / "report.html").resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert 'data-loaded="yes"' in dom, dom[-2000:]
    table = dom.split('<table class="trials">', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 1 + 4 and "<td>infeasible</td>" in table and "<td>complete</td>" in table
    decoded = re.findall(r'data-decoded="([^"]+)"', dom)
    assert len(decoded) == len(list(search.glob("*.png"))) >= 4
    assert all(re.fullmatch(r"\d+x\d+", d) and int(d.split("x")[0]) >= 300 for d in decoded), decoded
