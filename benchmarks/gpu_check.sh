#!/usr/bin/env bash
# GPU check (<= 5 minutes on one CUDA GPU): training, PGD and rendering throughput of featviz's fast
# paths, each as a ratio against float32/eager measured in the same process. Writes gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${1:-gpu_check.json}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run benchmarks/bench_gpu.py --device cpu --quick instead')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 300 "$PY" benchmarks/bench_gpu.py --device cuda > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT"
