#!/usr/bin/env bash
# Install gradiend with the extras named in $1 (comma separated; "workflow" is always included).
# Installs the CPU build torch==2.13.0 first when no torch is importable, so that pip never
# resolves the wide `torch` requirement to a multi-GB CUDA build on a CPU-only machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet torch==2.13.0
fi
extras="workflow${1:+,$1}"
"$PY" -m pip install --quiet -e ".[${extras}]"
