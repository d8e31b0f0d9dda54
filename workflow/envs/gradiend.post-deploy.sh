#!/usr/bin/env bash
# Runs once inside the freshly created rule environment: install this checkout's gradiend library.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
python -m pip install --no-deps --quiet -e "$repo"
