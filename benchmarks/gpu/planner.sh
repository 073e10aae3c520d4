# benchmarks/planner on the lent machine's CPU (an AMX Xeon so far), every shipped recipe in fp32 and bf16, 2 cores
# per job (taskset), the chat default's own rows (80 steps), and the CPU rows' recipes on the GPU (CUDA max
# allocated and reserved). STEADY=1: LoRA rows under ADAPTERKIT_MALLOC=steady instead of the GPU (RSS follows live
# tensors: what glibc's freed-but-resident heap adds on this machine is default minus steady). Random weights with
# the packaged models' configs (memory is real). Here first: NO_QLORA=1 bash benchmarks/gpu/prepare.sh; then
#   run(command="T=280 bash benchmarks/gpu/planner.sh 2>&1 | tail -60", carry=[".whl", ".gpu_assets"], timeout_s=420)
cd "$(dirname "$0")/../.." || exit 1
T=${T:-300}
source benchmarks/gpu/setup.sh
bench() { # cores name precision recipes...
  local cores=$1 name=$2 p=$3; shift 3
  cpu "$cores" "$name" $PY benchmarks/planner/run.py "$@" --precisions "$p" --no-defaults-rows --runs "/tmp/pl-$name" \
    --out "$OUT/$name.json"
}
defaults() { # cores name precision: chat_lora's row at its defaults (run.py's DEFAULTS_ROWS)
  cpu "$1" "$2" $PY benchmarks/planner/run.py chat_lora --precisions "$3" --only-defaults-rows --runs "/tmp/pl-$2" \
    --out "$OUT/$2.json"
}
gpu() { # cores name recipes...: the same benchmark on the GPU, both precisions
  local cores=$1 name=$2; shift 2
  OMP_NUM_THREADS=2 pin "$cores" timeout "$T" $PY benchmarks/planner/run.py "$@" --precisions bf16,fp32 \
    --no-defaults-rows --runs "/tmp/pl-$name" --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1
  echo "== $name rc=$?"
}
steady() { # name recipe overrides...: one planner row by hand (setup.sh's row), glibc's mmap threshold pinned
  local name=$1 recipe=$2; shift 2
  ADAPTERKIT_MALLOC=steady row "$name" "$recipe" --set train.max_steps=2 --set data.limit_eval=16 \
    --set hardware.precision="${P:-fp32}" "$@"
}
export -f steady
bench 0,1 chat-fp32 fp32 chat_lora chat_dpo lm_lora &
bench 2,3 chat-bf16 bf16 chat_lora chat_dpo lm_lora &
bench 4,5 enc-fp32 fp32 sentiment_lora ner_lora sentiment_full ner_bottleneck sentiment_prompt &
bench 6,7 enc-bf16 bf16 sentiment_lora ner_lora sentiment_full ner_bottleneck sentiment_prompt &
{ bench 8,9 smollm-fp32 fp32 sentiment_smollm_lora; defaults 8,9 defaults-fp32 fp32; } &
{ bench 10,11 smollm-bf16 bf16 sentiment_smollm_lora; defaults 10,11 defaults-bf16 bf16; } &
if [ -n "$STEADY" ]; then
  cpu 12,13 steady-enc bash -c "steady steady-sentiment_lora sentiment_lora; steady steady-ner_lora ner_lora --set task.max_length=64
    steady steady-sentiment_smollm_lora sentiment_smollm_lora; P=bf16 steady steady-sentiment_smollm_lora-bf16 sentiment_smollm_lora" &
  cpu 14,15 steady-chat bash -c "steady steady-chat_lora chat_lora --set task.padding_free=false --set task.num_samples=0
    steady steady-lm_lora lm_lora" &
else
  gpu 12,13 gpu-enc sentiment_lora ner_lora sentiment_full ner_bottleneck sentiment_prompt &
  gpu 14,15 gpu-dec chat_lora chat_dpo lm_lora sentiment_smollm_lora &
fi
wait
cp "$ADAPTERKIT_CACHE"/planner/libraries-*.json "$OUT/" 2>/dev/null
grep -h -E "ratio|within|rc=" "$OUT"/*.log | tee "$OUT/summary.txt"
bundle
