# Issue #17's chat question on the lent machine's CPU, short: chat_lora at its defaults (40 steps, no sample answers) in
# fp32 and bf16 side by side, each at the default tokens_per_pass and at 512 (one pass per step of chatterbot's batches),
# the sentiment pair, and how much GPU memory the CUDA context takes beside torch's allocator. 2 cores per run, all
# started together. Random weights with the packaged models' configs: speed and memory are real, losses are not.
# Here first: NO_QLORA=1 bash benchmarks/gpu/prepare.sh; then the device tool:
#   run(command="bash benchmarks/gpu/pairs.sh 2>&1 | tail -30", carry=[".whl", ".gpu_assets"], timeout_s=300)
cd "$(dirname "$0")/../.." || exit 1
STEPS=${STEPS:-40}; SENT=${SENT:-60}; T=${T:-200}
source benchmarks/gpu/setup.sh
chat=(train.max_steps=$STEPS task.num_samples=0)
sent=(train.max_steps=$SENT data.limit_eval=512)
sets() { for s in "$@"; do printf -- '--set %s ' "$s"; done; }
job() { # cores name recipe settings...
  local cores=$1 name=$2 recipe=$3; shift 3
  cpu "$cores" "$name" bash -c "row $name $recipe $(sets "$@")"
}
job 0,1 chat-fp32 chat_lora "${chat[@]}" hardware.precision=fp32 &
job 2,3 chat-bf16 chat_lora "${chat[@]}" hardware.precision=bf16 &
job 4,5 chat-fp32-512 chat_lora "${chat[@]}" hardware.precision=fp32 task.tokens_per_pass=512 &
job 6,7 chat-bf16-512 chat_lora "${chat[@]}" hardware.precision=bf16 task.tokens_per_pass=512 &
job 8,9 sent-fp32 sentiment_lora "${sent[@]}" hardware.precision=fp32 &
job 10,11 sent-bf16 sentiment_lora "${sent[@]}" hardware.precision=bf16 &
context() {  # GPU memory in use beside what torch's allocator reserved, after cuBLAS and a bf16 attention have loaded
  $PY -c "
import torch, torch.nn.functional as F
x = torch.randn(8, 256, 576, device='cuda', dtype=torch.bfloat16, requires_grad=True)
y = F.scaled_dot_product_attention(x.view(8, 256, 9, 64).transpose(1, 2), x.view(8, 256, 9, 64).transpose(1, 2),
    x.view(8, 256, 9, 64).transpose(1, 2), is_causal=True)
(y.float().sum() + (x @ x.transpose(1, 2)).float().sum()).backward(); torch.cuda.synchronize()
free, total = torch.cuda.mem_get_info()
print('cuda context MiB', round((total - free - torch.cuda.memory_reserved()) / 2**20), torch.cuda.get_device_name())"
}
export -f context
OMP_NUM_THREADS=2 pin 14,15 timeout 60 bash -c context > "$OUT/context.log" 2>&1 &
wait
grep -h -E "rc=|context" "$OUT"/*.log | tee "$OUT/summary.txt"
bundle
