# Issue #17 on the lent machine: bf16 against fp32 side by side, on its CPU (2 cores per run, pinned with
# taskset, as the 2-core development machines; AMX if its CPU has it) and on its GPU. Random weights with the
# packaged models' real configs and tokenizers (the weights cannot travel): speed and memory are real,
# losses and F1 are not. All CPU pairs start together, so each pair's two runs see the same load.
# Here first: NO_QLORA=1 bash benchmarks/gpu/prepare.sh; then the device tool:
#   run(command="bash benchmarks/gpu/precision.sh", carry=[".whl", ".gpu_assets"], timeout_s=480)
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-/tmp/out}; LOCAL=${LOCAL:-}; [ -n "$LOCAL" ] && export ADAPTERKIT_CACHE=$(mktemp -d); mkdir -p "$OUT"; PY=${PY:-python3}; STEPS=${STEPS:-40}; SENT=${SENT:-120}; T=${T:-360}
rm -rf /tmp/site /tmp/runs /tmp/pl; mkdir -p /tmp/site
[ -z "$LOCAL" ] && { $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1; }
cp -r .gpu_assets/scattertext /tmp/site/
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 ADAPTERKIT_CACHE=${ADAPTERKIT_CACHE:-/tmp/akcache} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
{ lscpu | grep -E "Model name|^CPU\(s\)|Thread\(s\)|Socket|L3"; echo "bf16 flags:" $(grep -o -w -E 'amx_bf16|amx_tile|avx512_bf16' /proc/cpuinfo | sort -u)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null; free -g | head -2; } | tee "$OUT/machine.txt"
$PY -c "import torch,transformers,peft,trl;print('torch',torch.__version__,'tf',transformers.__version__,'peft',peft.__version__,'trl',trl.__version__)" | tee -a "$OUT/machine.txt"
$PY benchmarks/gpu/make_model.py --minilm /tmp/site 2>&1 | grep made
chat=(recipes/chat_lora.toml --set train.max_steps=$STEPS --set task.num_samples=0)
sent=(recipes/sentiment_lora.toml --set train.max_steps=$SENT --set data.limit_eval=512)
pin() { if [ "$(nproc)" -ge 16 ]; then taskset -c "$@"; else shift; "$@"; fi; }  # LOCAL=1 smoke test: unpinned
cpu() { # cores name command... : one CPU job pinned to two cores, no GPU visible
  local cores=$1 name=$2; shift 2
  CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=2 pin "$cores" timeout "$T" "$@" > "$OUT/$name.log" 2>&1
  echo "== $name rc=$?"
}
run() { echo --output /tmp/runs/$1 --overwrite --force; }
# oneDNN's MiB per bf16 primitive on this CPU (AMX?): ~1 min, beside the GPU phase, before the CPU pairs start
cpu 0,1 kernels $PY benchmarks/planner/kernels.py --out "$OUT/kernels.json" &
kernels=$!
if nvidia-smi -L >/dev/null 2>&1; then  # the GPU first, alone: CPU jobs beside it slowed its launches
  for p in fp32 bf16; do
    taskset -c 14,15 timeout 70 $PY -m adapterkit run "${chat[@]}" --set hardware.precision=$p $(run gpu-chat-$p) \
      > "$OUT/gpu-chat-$p.log" 2>&1; echo "== gpu-chat-$p rc=$?"
    taskset -c 14,15 timeout 45 $PY benchmarks/gpu/profile_steps.py recipes/chat_lora.toml hardware.precision=$p \
      task.num_samples=0 data.limit_eval=8 2>&1 | grep -v -i warn | grep -A 34 PROFILE > "$OUT/gpu-profile-$p.txt"
  done
fi
wait $kernels
cpu 0,1 chat-fp32 $PY -m adapterkit run "${chat[@]}" --set hardware.precision=fp32 $(run chat-fp32) &
cpu 2,3 chat-bf16 $PY -m adapterkit run "${chat[@]}" --set hardware.precision=bf16 $(run chat-bf16) &
cpu 4,5 sent-fp32 $PY -m adapterkit run "${sent[@]}" --set hardware.precision=fp32 $(run sent-fp32) &
cpu 6,7 sent-bf16 $PY -m adapterkit run "${sent[@]}" --set hardware.precision=bf16 $(run sent-bf16) &
cpu 14,15 chat-bf16-pass512 $PY -m adapterkit run "${chat[@]}" --set hardware.precision=bf16 --set task.tokens_per_pass=512 \
  $(run chat-bf16-pass512) &
cpu 8,9 mfu $PY benchmarks/mfu/run.py --steps 10 --matmul-seconds 4 --precisions fp32,bf16 --out "$OUT/mfu.json" &
cpu 10,11 planner-fp32 $PY benchmarks/planner/run.py chat_lora sentiment_lora ner_lora sentiment_full --precisions fp32 \
  --no-defaults-rows --runs /tmp/pl --out "$OUT/planner-fp32.json" &
cpu 12,13 planner-bf16 $PY benchmarks/planner/run.py chat_lora sentiment_lora ner_lora sentiment_full --precisions bf16 \
  --no-defaults-rows --runs /tmp/pl --out "$OUT/planner-bf16.json" &
wait
for r in /tmp/runs/*/; do echo "-- $(basename $r)"; $PY - "$r" <<'PY'
import json, sys
info = json.load(open(sys.argv[1] + "run.json"))
m = json.load(open(sys.argv[1] + "metrics.json")) if __import__("os").path.exists(sys.argv[1] + "metrics.json") else {}
print({k: info.get(k) for k in ("train_tokens_per_second", "peak_rss_mib", "cuda_max_allocated_mib", "steps",
       "phase_seconds")}, "precision", (info.get("hardware") or {}).get("precision"),
      {k: round(v, 4) for k, v in m.items() if isinstance(v, (int, float))})
PY
done 2>&1 | tee "$OUT/summary.txt"
tail -n 4 "$OUT"/planner-*.log "$OUT"/mfu.log 2>/dev/null | grep -v "^$"
mkdir -p /tmp/bundle && cp "$OUT"/*.log "$OUT"/*.txt "$OUT"/*.json /tmp/bundle/ 2>/dev/null
tar czf "$OUT/bundle.tgz" -C /tmp/bundle . && find "$OUT" -maxdepth 1 -type f ! -name bundle.tgz ! -name all.log -delete  # 8 files come back at most
