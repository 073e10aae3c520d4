# Distributed paths on a lent GPU (prepared, not yet run: no GPU was lent to the session that wrote it). One GPU
# gives world size 1: DDP vs FSDP2 overhead (tokens/s, CUDA peak) on the same run, FSDP2 against the one-process
# losses (the CPU cannot run FSDP: accelerate picks FSDP only on accelerators), QLoRA under FSDP2 with
# quant_storage=bf16, the ZeRO refusal without deepspeed, and the planner's per-device figure for each.
# After benchmarks/gpu/prepare.sh here; device tool: run(command="bash benchmarks/gpu/scale.sh", carry=[".whl", ".gpu_assets"]).
cd "$(dirname "$0")/../.." || exit 1
rm -rf /tmp/site /tmp/runs; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
cp -r .gpu_assets/scattertext /tmp/site/ && export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 ADAPTERKIT_CACHE=/tmp/akcache PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; python3 benchmarks/gpu/make_model.py 2>&1 | tail -1
common=(--set train.max_steps=40 --set data.limit_eval=64 --set model.dropout=0 --set train.logging_steps=1
        --set train.save_every=40 --set task.num_samples=0 --devices 1)
run() { # name recipe extra...
  local name=$1 recipe=$2; shift 2
  timeout 150 python3 -m adapterkit run recipes/$recipe.toml "${common[@]}" "$@" --output /tmp/runs/$name --overwrite --force > $OUT/$name.log 2>&1
  echo "== $name rc=$?"; tail -3 $OUT/$name.log; python3 benchmarks/gpu/summary.py /tmp/runs/$name recipes/$recipe.toml "$@" | tee -a $OUT/summary.txt
}
run ddp chat_lora --set hardware.strategy=ddp
run fsdp chat_lora --set hardware.strategy=fsdp
run fsdp_qlora chat_qlora --set hardware.strategy=fsdp --set method.quant_storage=bf16
echo "== losses ddp vs fsdp (world size 1: should agree to ~1e-3 in bf16)"
python3 - <<'PY'
import json
def losses(d):
    s = json.load(open(f"/tmp/runs/{d}/checkpoints/checkpoint-40/trainer_state.json"))
    return [e["loss"] for e in s["log_history"] if "loss" in e]
a, b = losses("ddp"), losses("fsdp")
print("max |ddp - fsdp| per-step loss:", max(abs(x - y) for x, y in zip(a, b)))
PY
echo "== zero3 without deepspeed (expect one line, exit 2)"
python3 -m adapterkit run recipes/chat_lora.toml --set hardware.strategy=deepspeed-zero3 --devices 1 2>&1 | tail -1
python3 -m adapterkit plan recipes/chat_lora.toml --set hardware.strategy=fsdp --devices 1 2>&1 | grep -E "PEAK|strategy"
