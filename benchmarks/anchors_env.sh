#!/usr/bin/env bash
# Build (once) the anchor environment for benchmarks/bench_anchors.py: TIAToolbox and torchstain beside an
# editable wsikit. Usage: benchmarks/anchors_env.sh [ENV_DIR]. Fails with one line naming the problem.
set -u
cd "$(dirname "$0")/.."
ENV=${1:-.venv-anchors}
PY=${PYTHON:-python3}
REQ=benchmarks/anchors-requirements.txt
STAMP=$ENV/.anchors-installed
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$REQ" ] && [ "$STAMP" -nt pyproject.toml ]; then
    exit 0
fi
LOG=$(mktemp -t anchors-env.XXXXXX)
if ! { { [ -x "$ENV/bin/python" ] || "$PY" -m venv "$ENV"; } \
    && "$ENV/bin/python" -m pip install -q -r "$REQ" -e . \
    && "$ENV/bin/python" -c "import tiatoolbox, torchstain, wsikit"; } >"$LOG" 2>&1; then
    why=$(grep -E "(ERROR|Error|error|No such file|not found)" "$LOG" | tail -1)
    echo "make bench-anchors: could not build the anchor environment $ENV: ${why:-see $LOG} (full log: $LOG)" >&2
    exit 1
fi
touch "$STAMP"
echo "anchor environment ready: $ENV ($(du -sh "$ENV" | cut -f1))"
