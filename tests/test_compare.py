"""`adapterkit compare` end to end on a tiny BERT: each run in its own process, a method the planner
skips, a zero-shot row, result JSONs that follow the schema, a report that `adapterkit report`
rebuilds byte for byte, and HTML that renders (table rows and decoded images) in headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomli_w
from conftest import tiny_recipe

from adapterkit import results
from adapterkit.cli import main
from adapterkit.compare import method_overrides

METHODS = ["lora", "full", "qlora"]  # qlora is skipped: the recipe's hardware profile has no 4-bit kernels
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, tiny_bert_dir, data_files) -> Path:
    folder = tmp_path_factory.mktemp("compare")
    (folder / "profiles").mkdir()
    (folder / "profiles" / "cpu-no4bit.toml").write_text(
        'device = "cpu"\nmemory_gb = 16\nprecision = "fp32"\nbnb_4bit = false\n')
    recipe = tiny_recipe("classification", "lora", tiny_bert_dir, data_files, method={"r": 4, "alpha": 8},
                         train={"max_steps": 3, "logging_steps": 1}, hardware={"profile": "cpu-no4bit"})
    recipe.pop("name")
    (folder / "tiny.toml").write_bytes(tomli_w.dumps(recipe).encode())
    code = main(["compare", str(folder / "tiny.toml"), "--methods", ",".join(METHODS), "--seeds",
                 ",".join(map(str, SEEDS)), "--output", str(folder / "out")])
    assert code == 0
    return folder / "out"


def test_method_options_stay_with_their_method():
    assert method_overrides("lora", "lora", ["method.r=4", "train.max_steps=3"]) == ["method.r=4", "train.max_steps=3"]
    assert method_overrides("full", "lora", ["method.r=4", "train.max_steps=3"]) == [
        "train.max_steps=3", "method={name = 'full'}"]


def test_results_follow_the_schema(comparison):
    files = sorted(p.name for p in (comparison / "results").glob("*.json"))
    expected = sorted(f"{m}-seed{s}.json" for m in [*METHODS, results.ZERO_SHOT] for s in SEEDS)
    assert files == expected
    for path in (comparison / "results").glob("*.json"):
        result = json.loads(path.read_text())
        assert results.check(result) == [], path.name
    by_name = {p.stem: json.loads(p.read_text()) for p in (comparison / "results").glob("*.json")}
    for seed in SEEDS:
        lora, full, skipped, zero = (by_name[f"{m}-seed{seed}"] for m in ("lora", "full", "qlora", "zero-shot"))
        assert lora["status"] == full["status"] == zero["status"] == "ok"
        assert skipped["status"] == "skipped" and "4-bit" in skipped["error"]
        assert lora["options"]["r"] == 4 and "r" not in full["options"]  # the recipe's options stay with lora
        assert 0 < lora["trainable_params"] < full["trainable_params"] == full["total_params"]
        assert zero["trainable_params"] == 0 and zero["steps"] == 0 and lora["steps"] == 3
        assert lora["seed"] == seed and lora["primary_metric"] == "eval_macro_f1"
        assert {"eval_accuracy", "eval_macro_f1", "eval_loss"} <= set(lora["quality"])
        assert "per_label" in lora["details"]
        assert lora["peak_rss_mib"] > 50 and lora["checkpoint_bytes"] > 0 and lora["train_tokens_per_second"] > 0
        assert lora["device"] and lora["versions"]["torch"]
        assert [step for step, _ in lora["loss_curve"]] == [1, 2, 3] and zero["loss_curve"] is None
        assert (comparison / lora["run_dir"] / "run.json").is_file()


def test_report_has_a_row_per_method_and_rebuilds_identically(comparison, tmp_path):
    md = (comparison / "report.md").read_text()
    rows = {line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")}
    assert {"zero-shot", "lora", "full", "qlora"} <= rows
    assert "memory vs full" in md and "skipped:" in md and "per_label of the best method" in md
    assert len(list(comparison.glob("pareto_*.png"))) == 2
    assert len(list(comparison.glob("loss_curves_*.png"))) == 1  # lora and full overlaid
    before = {n: (comparison / n).read_bytes() for n in ("report.md", "report.html")}
    assert main(["report", str(comparison), "--output", str(tmp_path)]) == 0
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    # merging the same folder twice keeps one result per (recipe, method, seed)
    assert main(["report", str(comparison), str(comparison), "--output", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "report.md").read_bytes() == before["report.md"]


def test_embedded_plots_are_pngs(comparison):
    page = (comparison / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3  # two Pareto plots, the loss curves
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    assert "http://" not in page and "https://" not in page  # self-contained


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium); "
                                             ".ci/run installs it")
def test_html_renders_in_headless_chromium(comparison, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--virtual-time-budget=5000", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
           (comparison / "report.html").resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert 'data-loaded="yes"' in dom, dom[-2000:]
    table = dom.split('<table class="comparison">', 1)[1].split("</table>", 1)[0]
    for method in ("zero-shot", "lora", "full", "qlora"):
        assert f"<td>{method}</td>" in table
    decoded = re.findall(r'data-decoded="([^"]+)"', dom)
    assert len(decoded) == 3 and all(re.fullmatch(r"\d+x\d+", d) for d in decoded), decoded
    assert all(int(d.split("x")[0]) >= 300 for d in decoded)


# `adapterkit report DIR DIR2` over comparisons of one recipe in different setups (the README's
# `report runs/cmp runs/cmp-gpu`): each setup is its own ranked section with its own plots.
def _as_if_on(comparison: Path, folder: Path, device: str, slower: float) -> Path:
    """A copy of the comparison whose runs ran on ``device``, ``slower`` times slower."""
    shutil.copytree(comparison, folder)
    for path in (folder / "results").glob("*.json"):
        result = json.loads(path.read_text())
        result["device"] = device
        if result.get("train_seconds"):
            result["train_seconds"] *= slower
        path.write_text(json.dumps(result))
    return folder


def test_comparisons_from_two_devices_stay_in_two_sections(comparison, tmp_path):
    gpu = _as_if_on(comparison, tmp_path / "cmp-gpu", "NVIDIA H200, 139 GiB x 1", 0.1)
    assert main(["report", str(comparison), str(gpu), "--output", str(tmp_path / "both")]) == 0
    md = (tmp_path / "both" / "report.md").read_text()
    titles = [line for line in md.splitlines() if line.startswith("## ")]
    assert len(titles) == 2, titles
    assert any("NVIDIA H200" in t for t in titles) and any("CPU " in t for t in titles)
    tables = md.split("\n## ")[1:]
    assert [any(line.startswith("| lora ") for line in t.splitlines()) for t in tables] == [True, True]  # lora in
    # both sections: the GPU folder's lora did not replace the CPU one
    pngs = sorted(p.name for p in (tmp_path / "both").glob("pareto_memory_*.png"))
    assert len(pngs) == 2, pngs  # each section keeps its own plot


@pytest.mark.parametrize("sets", [["train.max_steps=3"], ["train.max_steps=3", "data.eval=other.jsonl"]])
def test_a_comparison_with_other_set_items_is_its_own_section(comparison, tmp_path, sets):
    other = tmp_path / "cmp-other"
    shutil.copytree(comparison, other)
    (other / "comparison.json").write_text(json.dumps({"recipe": "tiny.toml", "sets": sets}))
    assert main(["report", str(comparison), str(other), "--output", str(tmp_path / "both")]) == 0
    titles = [line for line in (tmp_path / "both" / "report.md").read_text().splitlines() if line.startswith("## ")]
    assert len(titles) == 2 and any("--set train.max_steps=3" in t for t in titles), titles
