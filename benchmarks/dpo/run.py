"""DPO after chat LoRA: held-out preference accuracy before and after, and peak memory vs the planner.

1. ``adapterkit run recipes/chat_lora.toml`` (chat SFT with LoRA) into WORK/chat_lora;
2. ``adapterkit run recipes/chat_dpo.toml`` with ``model.adapter = WORK/chat_lora/adapter`` into WORK/chat_dpo;
   each in its own process, so each run.json's peak RSS is that run's alone;
3. on the held-out pairs of chat_dpo's eval split (``builtin:chatterbot-pairs``, the conversations chat_lora held
   out too), the summed log-probability of each answer after its prompt under the base model, the SFT adapter and
   the DPO adapter, and from them:
   - preference accuracy: share of pairs whose chosen answer is more likely than the rejected one;
   - reward accuracy (DPO's implicit reward, reference = the SFT adapter): share of pairs with
     logp_dpo(chosen) - logp_sft(chosen) > logp_dpo(rejected) - logp_sft(rejected). Before DPO the policy is the
     reference, every reward is 0 and the accuracy is 0 by definition; after, it should equal trl's
     ``eval_rewards/accuracies`` in metrics.json (a cross-check);
4. the planner's predicted peak for each recipe (``adapterkit plan``'s figure) beside the measured peak RSS.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/dpo/run.py [--sft-steps 30] [--dpo-steps 30] [--eval-rows 64]
        [--precision fp32]

Writes ``benchmarks/dpo/results.json`` (or ``--out``); scratch runs go to ``benchmarks/dpo/work/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def adapterkit_run(recipe: str, output: Path, sets: list[str]) -> dict:
    cmd = [sys.executable, "-m", "adapterkit", "run", str(REPO / recipe), "--output", str(output), "--overwrite",
           *(f"--set={s}" for s in sets)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return {"run": json.loads((output / "run.json").read_text()), "metrics": json.loads((output / "metrics.json").read_text())}


def planned_peak_mib(recipe: str, sets: list[str]) -> float:
    from adapterkit import load_recipe
    from adapterkit.preflight import preflight

    fit = preflight(load_recipe(REPO / recipe, sets), memory="assess").fit
    return fit.estimate.peak / 2**20


def answer_logps(model, tokenizer, prompt: list[dict], answer: list[dict]) -> float:
    import torch

    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"]
    full_ids = tokenizer.apply_chat_template(prompt + answer, return_dict=True)["input_ids"]
    ids = torch.tensor([full_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    logps = torch.log_softmax(logits[0, :-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    return float(logps[len(prompt_ids) - 1:].sum())


def held_out_logps(dpo_dir: Path, sft_adapter: Path, dpo_adapter: Path) -> dict[str, list[tuple[float, float]]]:
    """(chosen, rejected) answer log-probs per held-out pair under base, SFT and DPO."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapterkit import load_recipe
    from adapterkit.assets import resolve_model
    from adapterkit.data.sources import load_train_eval

    recipe = load_recipe(dpo_dir / "recipe.toml")
    _, pairs = load_train_eval(recipe.data, recipe.source)
    path = resolve_model(recipe.model.name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    out = {}
    for name, adapter in (("base", None), ("sft", sft_adapter), ("dpo", dpo_adapter)):
        model = AutoModelForCausalLM.from_pretrained(path)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, adapter)
        model.eval()
        out[name] = [(answer_logps(model, tokenizer, p["prompt"], p["chosen"]),
                      answer_logps(model, tokenizer, p["prompt"], p["rejected"])) for p in pairs]
        print(f"{name}: scored {len(pairs)} held-out pairs", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-steps", type=int, default=30)
    parser.add_argument("--dpo-steps", type=int, default=30)
    parser.add_argument("--eval-rows", type=int, default=64)
    parser.add_argument("--precision", default="fp32", help="hardware.precision of both runs (docs/defaults.md's "
                                                            "figures are fp32)")
    parser.add_argument("--reuse-sft", action="store_true", help="keep WORK/chat_lora if it finished")
    parser.add_argument("--work", default=str(HERE / "work"))
    parser.add_argument("--out", default=str(HERE / "results.json"))
    args = parser.parse_args()
    work = Path(args.work)
    common = [f"data.limit_eval={args.eval_rows}", f"hardware.precision={args.precision}", "task.num_samples=1"]
    sft_sets = [f"train.max_steps={args.sft_steps}", *common]
    done = work / "chat_lora" / "run.json"
    if args.reuse_sft and done.is_file():
        sft = {"run": json.loads(done.read_text()), "metrics": json.loads((done.parent / "metrics.json").read_text())}
    else:
        sft = adapterkit_run("recipes/chat_lora.toml", work / "chat_lora", sft_sets)
    dpo_sets = [f"train.max_steps={args.dpo_steps}", *common,
                f"model.adapter={json.dumps(str(work / 'chat_lora' / 'adapter'))}"]
    dpo = adapterkit_run("recipes/chat_dpo.toml", work / "chat_dpo", dpo_sets)
    logps = held_out_logps(work / "chat_dpo", work / "chat_lora" / "adapter", work / "chat_dpo" / "adapter")
    n = len(logps["dpo"])

    def preference(name):
        return sum(c > r for c, r in logps[name]) / n

    reward = sum((dc - sc) > (dr - sr) for (dc, dr), (sc, sr) in zip(logps["dpo"], logps["sft"])) / n
    margin = sum((dc - sc) - (dr - sr) for (dc, dr), (sc, sr) in zip(logps["dpo"], logps["sft"])) / n
    beta = 0.1
    result = {
        "machine": f"shared 2-core AMD EPYC ({platform.processor() or platform.machine()}), indicative",
        "held_out_pairs": n,
        "settings": {"sft": sft_sets, "dpo": dpo_sets},
        "preference_accuracy": {k: preference(k) for k in ("base", "sft", "dpo")},
        "reward_accuracy": {"before (policy = reference)": 0.0, "after": reward,
                            "after, trl eval_rewards/accuracies": dpo["metrics"].get("eval_reward_accuracy")},
        "reward_margin_after": beta * margin,
        "dpo_metrics": dpo["metrics"],
        "peak_rss_mib": {"chat_lora": sft["run"]["peak_rss_mib"], "chat_dpo": dpo["run"]["peak_rss_mib"]},
        "planned_peak_mib": {"chat_lora": planned_peak_mib("recipes/chat_lora.toml", sft_sets),
                             "chat_dpo": planned_peak_mib("recipes/chat_dpo.toml", dpo_sets)},
        "train_seconds": {"chat_lora": sft["run"]["phase_seconds"].get("train"),
                          "chat_dpo": dpo["run"]["phase_seconds"].get("train")},
        "steps": {"chat_lora": sft["run"]["steps"], "chat_dpo": dpo["run"]["steps"]},
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "dpo_metrics"}, indent=2))


if __name__ == "__main__":
    main()
