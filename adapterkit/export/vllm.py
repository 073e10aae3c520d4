"""Will vLLM's LoRA loader take this run's adapter? Read from the saved PEFT ``adapter_config.json``, so users
know before they deploy (the merged export loads in vLLM as a plain model either way).

vLLM (as of 0.6-0.11) loads LoRA adapters only: no other PEFT type (prompt/prefix/p-tuning, IA3), no
``modules_to_save`` (whole trained modules such as a classification head), no DoRA, and ranks up to its
``max_lora_rank`` limit (at most 512).
"""

from __future__ import annotations

import json

from ..methods.peft_tuner import PEFT_FILES

MAX_LORA_RANK = 512


def compatibility(source) -> dict:
    path = source.artifact / PEFT_FILES.config
    if not path.is_file():
        return {"loadable": False, "reasons": [f"the run saved no PEFT adapter ({source.info['artifact']}/): nothing "
                                               "for vLLM's LoRA loader; serve the merged model instead"]}
    config = json.loads(path.read_text(encoding="utf-8"))
    kind, reasons = config.get("peft_type"), []
    if kind != "LORA":
        what = "prompt-learning adapter" if config.get("num_virtual_tokens") else f"{kind} adapter"
        reasons.append(f"a {what} is not a LoRA: vLLM's LoRA loader takes LoRA adapters only")
        return {"loadable": False, "reasons": reasons, "peft_type": kind}
    rank = max([config.get("r") or 0, *(config.get("rank_pattern") or {}).values()])
    if config.get("modules_to_save"):
        reasons.append(f"modules_to_save {config['modules_to_save']} present: vLLM rejects adapters that carry "
                       "whole trained modules")
    if config.get("use_dora"):
        reasons.append("DoRA: not supported by vLLM's LoRA loader")
    if rank > MAX_LORA_RANK:
        reasons.append(f"rank {rank} is over vLLM's max_lora_rank limit ({MAX_LORA_RANK})")
    return {"loadable": not reasons, "reasons": reasons, "peft_type": kind, "rank": rank,
            "max_lora_rank_needed": rank}


def lines(report: dict) -> list[str]:
    if report["loadable"]:
        return [f"vLLM: the adapter loads as a LoRA (start vLLM with --enable-lora --max-lora-rank >= "
                f"{report['max_lora_rank_needed']})"]
    return [f"vLLM: the adapter will not load as a LoRA: {reason}" for reason in report["reasons"]]
