"""Realistic mistakes on the command line and in model folders: each is one line on stderr naming what is
wrong, exit code 2, nothing on stdout (issue #18, items 4, 8, 9)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import tomli_w
from conftest import tiny_recipe

from adapterkit.cli import main


def one_line_error(capsys, *expected: str) -> str:
    out, err = capsys.readouterr()
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("adapterkit: error:")]
    assert len(lines) == 1 and "Traceback" not in err and not out.strip(), (out, err)
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_bert_dir, data_files) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    path = folder / "tiny.toml"
    path.write_text(tomli_w.dumps(tiny_recipe("classification", "lora", tiny_bert_dir, data_files,
                                              train={"max_steps": 1})))
    assert main(["run", str(path), "--output", str(folder / "run")]) == 0
    return folder / "run"


@pytest.mark.parametrize("args, expected", [
    (["plan", "{recipe}", "--profile", "nosuch"], "unknown hardware profile 'nosuch'"),
    (["plan", "{recipe}", "--methods", "bogus"], "--methods: unknown method 'bogus'"),
    (["plan", "{recipe}", "--methods", ","], "--methods"),
    (["compare", "{recipe}", "--seeds", "a,b"], "--seeds: 'a,b': expected comma-separated integers"),
    (["compare", "{recipe}", "--seeds", ""], "--seeds: '': give at least one seed"),
    (["run", "{recipe}", "--set", "train.max_steps=true"], "train.max_steps: Value error, expected a number"),
    (["run", "{recipe}", "--set", "train.max_steps=1e23"], "train.max_steps"),
    (["run", "{recipe}", "--set", "train.epochs=1e12"], "train.epochs"),
    (["run", "{recipe}", "--set", "method.r=false"], "method.r"),
    (["run", "{recipe}", "--set", "model.name='./missing'"], "model folder './missing' not found"),
    # the shell ate the quotes of --set method={name="loha"}: refused at once, with the argument to type
    (["run", "{recipe}", "--set", "method={{name=loha}}"], "type --set 'method={name=\"loha\"}'"),
], ids=["plan-profile", "plan-methods", "plan-no-methods", "seeds-letters", "seeds-empty", "bool-steps",
        "huge-steps", "huge-epochs", "bool-rank", "missing-folder", "unquoted-table"])
def test_bad_command_lines_are_one_line_and_exit_2(one_step_recipe, tmp_path, args, expected, capsys):
    out = tmp_path / "out"
    argv = [a.format(recipe=one_step_recipe) for a in args] + (["--output", str(out)] if args[0] in ("run", "compare") else [])
    assert main(argv) == 2
    one_line_error(capsys, expected)
    assert not out.exists()


def test_generate_needs_a_positive_token_count(finished_run, capsys):
    assert main(["generate", str(finished_run), "--prompt", "hi", "--max-new-tokens", "0"]) == 2
    one_line_error(capsys, "--max-new-tokens: 0: must be at least 1")
    assert main(["generate", str(finished_run), "--prompt", "  "]) == 2  # was answered, exit 0
    one_line_error(capsys, "--prompt: empty")


def damaged_copy(finished_run, tmp_path, damage) -> Path:
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    damage(run)
    return run


WEIGHTS = "adapter/adapter_model.safetensors"


def mismatched_adapter_config(run: Path) -> None:
    """Readable, but naming layers the model does not have: peft refuses it when it loads the adapter."""
    path = run / "adapter/adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "target_modules": ["nosuch"]}))


def peft_type(kind):
    """Valid JSON naming another tuner: peft builds whatever ``peft_type`` says (KeyError for one it does not know; an
    untrained LoHa adapter, without a word, for a LoRA run's file saying LOHA)."""
    def damage(run: Path) -> None:
        path = run / "adapter/adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "peft_type": kind}))
    return damage


CONFIG = "adapter/adapter_config.json"
PEFT_TYPES = [(peft_type("NOPE"), f"{CONFIG}: peft_type 'NOPE' is not a tuner peft "),
              (peft_type(None), f"{CONFIG}: peft_type None is not a tuner peft "),
              (peft_type("LOHA"), f"{CONFIG}: peft_type 'LOHA', but method 'lora' saves 'LORA' adapters"),
              (peft_type("PROMPT_TUNING"), f"{CONFIG}: peft_type 'PROMPT_TUNING', but method 'lora' saves 'LORA'")]
PEFT_TYPE_IDS = ["unknown-peft-type", "no-peft-type", "other-peft-type", "prompt-peft-type"]


@pytest.mark.parametrize("damage, expected", [
    (lambda run: (run / "run.json").write_text('{"artifact": "adap'), "run.json: is corrupt"),
    (lambda run: shutil.rmtree(run / "adapter"), "the trained weights (adapter/) are missing"),
    (lambda run: (run / WEIGHTS).unlink(), f"{WEIGHTS}: missing (the run's trained weights); rerun the recipe"),
    (lambda run: os.truncate(run / WEIGHTS, 100), f"{WEIGHTS}: truncated or corrupt (Error while deserializing header"),
    (lambda run: (run / "adapter/adapter_config.json").unlink(), "adapter/adapter_config.json: missing"),
    # damage the check before loading does not look for: the loader's own error, as one line naming the folder
    (lambda run: os.truncate(run / "adapter/tokenizer.json", 300), "adapter: could not load the run's saved files"),
    (mismatched_adapter_config, "adapter: could not load the run's saved files (NoMatchingPeftModuleError"),
    *PEFT_TYPES,
], ids=["corrupt-run-json", "missing-adapter", "missing-weights", "truncated-weights", "missing-adapter-config",
        "truncated-tokenizer", "mismatched-adapter-config", *PEFT_TYPE_IDS])
def test_eval_of_a_damaged_run_is_one_line(finished_run, tmp_path, damage, expected, capsys):
    run = damaged_copy(finished_run, tmp_path, damage)
    assert main(["eval", str(run)]) == 2
    one_line_error(capsys, expected)


@pytest.mark.parametrize("command", [["generate", "--prompt", "hi"], ["chat"], ["serve", "--port", "18999"],
                                     ["export", "--format", "merged"]], ids=["generate", "chat", "serve", "export"])
@pytest.mark.parametrize("damage, expected", [
    (lambda run: os.truncate(run / WEIGHTS, 100), f"{WEIGHTS}: truncated or corrupt"),
    (lambda run: os.truncate(run / "adapter/tokenizer.json", 300), "adapter: could not load the run's saved files"),
    (mismatched_adapter_config, "adapter: could not load the run's saved files (NoMatchingPeftModuleError"),
    PEFT_TYPES[0], PEFT_TYPES[2],
], ids=["truncated-weights", "truncated-tokenizer", "mismatched-adapter-config", PEFT_TYPE_IDS[0], PEFT_TYPE_IDS[2]])
def test_every_command_that_reads_a_damaged_run_says_so_in_one_line(finished_run, tmp_path, command, damage, expected,
                                                                    capsys):
    """generate, chat, serve (its loader: serve/engine.py open_runs) and export; they stop before a port is bound."""
    run = damaged_copy(finished_run, tmp_path, damage)
    assert main([command[0], str(run), *command[1:]]) == 2
    one_line_error(capsys, expected)


def test_a_git_lfs_pointer_instead_of_weights_is_named(one_step_recipe, tiny_bert_dir, tmp_path, capsys):
    """A clone without ``git lfs pull``: today safetensors says 'header too large' after plan said it fits."""
    model = tmp_path / "clone"
    shutil.copytree(tiny_bert_dir, model)
    (model / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n"
                                             "oid sha256:4d7a2146ef0e3bd3e8fd6ff2fb6a4a1d5e3c1f2a\nsize 90868376\n")
    for command in (["plan", str(one_step_recipe)], ["run", str(one_step_recipe), "--output", str(tmp_path / "out")]):
        assert main([*command, "--set", f"model.name='{model}'"]) == 2
        one_line_error(capsys, "model.safetensors", "Git LFS pointer", "git lfs pull")


def test_remote_code_is_refused_naming_the_key(one_step_recipe, tmp_path, capsys):
    model = tmp_path / "remote"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "mything", "auto_map": {
        "AutoConfig": "conf.MyConfig", "AutoModelForSequenceClassification": "mod.MyModel"}}))
    assert main(["run", str(one_step_recipe), "--set", f"model.name='{model}'", "--output", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "model.trust_remote_code", "set model.trust_remote_code = true")


def test_a_malicious_pickle_is_refused_in_one_line(one_step_recipe, tiny_bert_dir, tmp_path, capsys):
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "PWNED"),))

    model = tmp_path / "evil"
    shutil.copytree(tiny_bert_dir, model)
    (model / "model.safetensors").unlink()
    torch.save({"bert.embeddings.word_embeddings.weight": Payload()}, model / "pytorch_model.bin")
    assert main(["run", str(one_step_recipe), "--set", f"model.name='{model}'", "--set", "model.allow_pickle=true",
                 "--output", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "model.allow_pickle", "could run code")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["lots", "0", "1e-9", "64", "1e400"])
def test_a_bad_allocator_setting_is_one_line_and_exit_2(one_step_recipe, tmp_path, monkeypatch, capsys, value):
    """``ADAPTERKIT_MALLOC`` (measure.allocator_threshold) takes 'glibc', 'steady' or a threshold from a page to glibc's
    32 MiB; anything else names the variable before the run reads or writes anything, on any device."""
    monkeypatch.setenv("ADAPTERKIT_MALLOC", value)
    out = tmp_path / "out"
    assert main(["run", str(one_step_recipe), "--set", "model.name='./missing'", "--output", str(out)]) == 2
    one_line_error(capsys, "ADAPTERKIT_MALLOC", repr(value))
    assert not out.exists()


def written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def unreadable(path: Path) -> Path:
    """A data file this process cannot read: mode 000, or for root (who reads any file) a link to a write-only
    /proc/sys file, which refuses root too."""
    path.write_text("text,label\nfine,pos\n")
    path.chmod(0)
    if os.access(path, os.R_OK):
        path.unlink()
        target = Path("/proc/sys/vm/drop_caches")
        if not target.exists():
            pytest.skip("no way to make a file unreadable to this user here")
        path.symlink_to(target)
    return path


@pytest.mark.parametrize("make, expected", [
    (lambda folder: folder / "missing.csv", "data file or folder '{path}' not found"),
    (lambda folder: folder, "{path} has no 'validation' split"),  # a folder of data files, train.jsonl only
    (lambda folder: written(folder / "empty.jsonl", ""), "'{path}': no evaluation examples"),
    (lambda folder: written(folder / "cols.jsonl", '{"a": 1}\n'), "but {path} has a;"),
    (lambda folder: unreadable(folder / "locked.csv"), "{path}: cannot read it (Permission denied)"),
], ids=["missing-file", "folder-without-eval-split", "empty-file", "wrong-columns", "unreadable-file"])
def test_eval_data_that_cannot_be_read_names_the_data_option(finished_run, tmp_path, make, expected, capsys):
    """``eval --data`` replaces the run recipe's data.eval: its problems name --data (or the file itself), never
    the recipe's field, which the user did not type."""
    (tmp_path / "train.jsonl").write_text('{"text": "fine", "label": "pos"}\n')
    path = make(tmp_path)
    assert main(["eval", str(finished_run), "--data", str(path)]) == 2
    line = one_line_error(capsys, expected.format(path=path))
    assert "recipe.toml" not in line and "data.eval" not in line, line
    assert "--data" in line or line.startswith(f"adapterkit: error: {path}:"), line
