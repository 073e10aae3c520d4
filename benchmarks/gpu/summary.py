import json
import sys
from pathlib import Path

run, recipe, sets = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
try:
    info = json.loads((run / "run.json").read_text())
except OSError as e:
    print("  no run.json", e)
    sys.exit()
keys = ("method", "steps", "train_tokens", "train_tokens_per_second", "train_samples_per_second", "peak_rss_mib",
        "cuda_max_allocated_mib", "cuda_max_reserved_mib", "trainable_params", "total_params", "phase_seconds")
print(" ", {k: info.get(k) for k in keys}, "precision", (info.get("hardware") or {}).get("precision"))
try:
    from adapterkit import loading
    from adapterkit.memory.estimate import MIB
    from adapterkit.memory.verdict import assess, shape_of
    from adapterkit.plan import load_recipe, make_plan
    overrides = ["train.max_steps=40", "data.limit_eval=64"] + (["task.num_samples=0"] if "chat" in recipe else [])
    overrides += [s for s in sets if s != "--set"]
    loaded = load_recipe(recipe, overrides)
    plan = make_plan(loaded)
    est = assess(plan, shape_of(plan, loading.load_config(loaded.model, loaded.source))).estimate
    phases = {p: round(getattr(est, p) / MIB) for p in ("train", "eval", "load")}
    print("  planned peak MiB", round(est.peak / MIB), est.phase, phases)
except Exception as e:
    print("  plan failed", type(e).__name__, e)
