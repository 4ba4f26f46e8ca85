#!/usr/bin/env bash
# The embedding benchmark side by side with its Python reference: Concord's candle encoder
# (`cargo bench -p concord-ml --bench embed_throughput`) and sentence-transformers on PyTorch
# (2 threads) embed the same texts from ../shared/data with the same model folder, at batch
# sizes 1, 8, 32 and 128; then the reference checks that both give the same embeddings.
#
# Bench-only: the virtualenv (target/bench-venv) holds PyTorch from PyPI, which brings its CUDA
# libraries along (about 4.5 GB), so no test depends on it.  Usage: scripts/bench-reference.sh [ITEMS]
set -euo pipefail
cd "$(dirname "$0")/.."
items="${1:-128}"
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sentence_transformers" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "sentence-transformers==6.2.0" "torch==2.15.0"
fi
[ -f models/all-MiniLM-L6-v2/model.safetensors ] || bash scripts/setup.sh
embeddings="$PWD/target/bench-embeddings.json"
echo "## Concord (candle)"
CONCORD_BENCH_EMBEDDINGS="$embeddings" cargo bench -q -p concord-ml --bench embed_throughput -- "$items"
echo
echo "## sentence-transformers (PyTorch)"
"$venv/bin/python" scripts/bench_reference.py models/all-MiniLM-L6-v2 ../shared/data "$items" "$embeddings" 2>&1 \
    | grep -v -E "Warning|Loading weights|Token indices"
