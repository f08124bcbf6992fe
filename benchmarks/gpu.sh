#!/usr/bin/env bash
# GPU benchmarks: the same scripts on CUDA (the CNN runs with bf16 autocast and channels_last there).
# Usage: bash benchmarks/gpu.sh   (from the repository root, in the project's venv, on a CUDA machine)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
$PY -c "import torch; print(torch.cuda.get_device_name(0), torch.__version__)"
$PY benchmarks/bench_stain.py --device cuda --json benchmarks/results_stain_cuda.json
$PY benchmarks/bench_segment.py --device cuda --json benchmarks/results_segment_cuda.json
$PY benchmarks/bench_run.py --device cuda --batch-size 32 --sizes 8192 20480 --json benchmarks/results_run_cuda.json
