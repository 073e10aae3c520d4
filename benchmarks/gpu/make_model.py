"""Random-weight models with SmolLM2's real config and tokenizer (the weights do not travel: speed and memory
only). 135M goes where builtin:smollm2-135m-instruct resolves ($ADAPTERKIT_CACHE); 1.7B to /tmp/smollm2-1.7b."""
import gzip
import os
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

src = Path(".gpu_assets/smollm2")  # config + gzipped tokenizer, written by benchmarks/gpu/prepare.sh
def folder(target: Path, **changes):
    target.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name == "tokenizer.json.gz":
            (target / "tokenizer.json").write_bytes(gzip.decompress(f.read_bytes()))
        else:
            shutil.copy(f, target / f.name)
    config = AutoConfig.from_pretrained(src)
    for k, v in changes.items():
        setattr(config, k, v)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if not changes else torch.bfloat16)
    model.save_pretrained(target)
    print("made", target, sum(p.numel() for p in model.parameters()) / 1e6, "M params", flush=True)

folder(Path(os.environ["ADAPTERKIT_CACHE"]) / "models" / "smollm2-135m-instruct")
if "--big" in sys.argv:
    folder(Path("/tmp/smollm2-1.7b"), hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
           num_attention_heads=32, num_key_value_heads=32, head_dim=64)
