# Issue #17 on the lent machine: bf16 against fp32 side by side, on its CPU (2 cores per run, pinned with
# taskset, as the 2-core development machines; AMX if its CPU has it) and on its GPU. Random weights with the
# packaged models' real configs and tokenizers (the weights cannot travel): speed and memory are real,
# losses and F1 are not. All CPU pairs start together, so each pair's two runs see the same load.
# Here first: NO_QLORA=1 bash benchmarks/gpu/prepare.sh; then the device tool:
#   run(command="bash benchmarks/gpu/precision.sh", carry=[".whl", ".gpu_assets"], timeout_s=480)
cd "$(dirname "$0")/../.." || exit 1
STEPS=${STEPS:-40}; SENT=${SENT:-120}; T=${T:-300}
PLAN=${PLAN:-chat_lora sentiment_lora ner_lora sentiment_full}
source benchmarks/gpu/setup.sh
chat=(recipes/chat_lora.toml --set train.max_steps=$STEPS --set task.num_samples=0)
sent=(recipes/sentiment_lora.toml --set train.max_steps=$SENT --set data.limit_eval=512)
run() { echo --output /tmp/runs/$1 --overwrite --force; }
# oneDNN's MiB per bf16 primitive on this CPU (AMX?): ~1 min, beside the GPU phase, before the CPU pairs start
cpu 0,1 kernels $PY benchmarks/planner/kernels.py --out "$OUT/kernels.json" &
kernels=$!
if nvidia-smi -L >/dev/null 2>&1; then  # the GPU first, alone: CPU jobs beside it slowed its launches
  for p in fp32 bf16; do
    taskset -c 14,15 timeout 70 $PY -m adapterkit run "${chat[@]}" --set hardware.precision=$p $(run gpu-chat-$p) \
      > "$OUT/gpu-chat-$p.log" 2>&1; echo "== gpu-chat-$p rc=$?"
    [ -n "${GPU_PROFILE:-}" ] && taskset -c 14,15 timeout 45 $PY benchmarks/gpu/profile_steps.py recipes/chat_lora.toml \
      hardware.precision=$p task.num_samples=0 data.limit_eval=8 2>&1 | grep -v -i warn | grep -A 34 PROFILE > "$OUT/gpu-profile-$p.txt"
  done
fi
wait $kernels
cpu 0,1 chat-fp32 $PY -m adapterkit run "${chat[@]}" --set hardware.precision=fp32 $(run chat-fp32) &
cpu 2,3 chat-bf16 $PY -m adapterkit run "${chat[@]}" --set hardware.precision=bf16 $(run chat-bf16) &
cpu 4,5 sent-fp32 $PY -m adapterkit run "${sent[@]}" --set hardware.precision=fp32 $(run sent-fp32) &
cpu 6,7 sent-bf16 $PY -m adapterkit run "${sent[@]}" --set hardware.precision=bf16 $(run sent-bf16) &
probe() {  # what the libraries keep resident once imported (the planner's baseline), and oneDNN's ISA for bf16
  $PY -c "import resource, torch, transformers, peft, trl, datasets; print('import RSS MiB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, torch.__version__)"
  ONEDNN_VERBOSE=1 $PY -c "import torch; a = torch.randn(256, 576, dtype=torch.bfloat16); (a @ a.T).sum()" 2>&1 | grep -m 3 -i -E "isa|info,cpu"
  $PY benchmarks/gpu/profile_steps.py recipes/chat_lora.toml hardware.precision=bf16 task.num_samples=0 data.limit_eval=8 2>&1 \
    | grep -v -i warn | grep -A 20 PROFILE
}
export -f probe; export PY
cpu 14,15 probe bash -c probe &
cpu 8,9 mfu $PY benchmarks/mfu/run.py --steps 10 --matmul-seconds 4 --precisions fp32,bf16 --out "$OUT/mfu.json" &
cpu 10,11 planner-fp32 $PY benchmarks/planner/run.py $PLAN --precisions fp32 \
  --no-defaults-rows --runs /tmp/pl --out "$OUT/planner-fp32.json" &
cpu 12,13 planner-bf16 $PY benchmarks/planner/run.py $PLAN --precisions bf16 \
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
bundle
