# The precision rule's unmeasured rows on the lent machine's CPU (an AMX Xeon so far): lm_lora and chat_dpo in fp32
# and bf16, each pair side by side (2 cores per job, taskset), and whether MKL's buffer cache is part of fp32 LoRA's
# heap slack there (MKL_DISABLE_FAST_MM=1 on three planner rows, against the same row at the default). Random
# weights with the packaged models' configs: speed and memory are real, losses are not. Here first:
# NO_QLORA=1 bash benchmarks/gpu/prepare.sh; then the device tool:
#   run(command="bash benchmarks/gpu/rules.sh", carry=[".whl", ".gpu_assets"], timeout_s=330)
cd "$(dirname "$0")/../.." || exit 1
T=${T:-270}; DPO_STEPS=${DPO_STEPS:-8}
source benchmarks/gpu/setup.sh
planner_row=(--set train.max_steps=2 --set data.limit_eval=16 --set hardware.precision=fp32)
cpu 4,5 adapter bash -c "row base chat_lora --set train.max_steps=2 --set task.num_samples=0 --set data.limit_eval=8 --set hardware.precision=fp32"
cpu 0,1 lm-fp32 bash -c "row lm-fp32 lm_lora --set hardware.precision=fp32" &
cpu 2,3 lm-bf16 bash -c "row lm-bf16 lm_lora --set hardware.precision=bf16" &
dpo="--set model.adapter=/tmp/runs/base/adapter --set train.max_steps=$DPO_STEPS --set task.num_samples=0 --set data.limit_eval=16"
cpu 4,5 dpo-fp32 bash -c "row dpo-fp32 chat_dpo $dpo --set hardware.precision=fp32" &
cpu 6,7 dpo-bf16 bash -c "row dpo-bf16 chat_dpo $dpo --set hardware.precision=bf16" &
cpu 8,9 mkl-sentiment bash -c "MKL_DISABLE_FAST_MM=1 row mkl-sentiment_lora sentiment_lora ${planner_row[*]}" &
cpu 10,11 mkl-chat bash -c "MKL_DISABLE_FAST_MM=1 row mkl-chat_lora chat_lora ${planner_row[*]} --set task.padding_free=false --set task.num_samples=0" &
cpu 12,13 mkl-smollm bash -c "MKL_DISABLE_FAST_MM=1 row mkl-smollm sentiment_smollm_lora ${planner_row[*]}" &
cpu 14,15 default-sentiment bash -c "row default-sentiment_lora sentiment_lora ${planner_row[*]}" &
wait
grep -h -E "rc=" "$OUT"/*.log | tee "$OUT/summary.txt"
bundle
