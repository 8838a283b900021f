#!/usr/bin/env bash
# Tracking and registry benchmark (issue 4): Plinth against MLflow's SQLite
# store used directly and MLflow's tracking server over HTTP, in one run.
# Builds plinthd in release mode, installs MLflow and the Plinth client into
# Benchmarks/.venv-mlflow, runs Benchmarks/tracking/bench.py and writes the
# figures to Benchmarks/results/tracking.json (and a table on stdout).
#   Benchmarks/tracking/run.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "==> swift build -c release --product plinthd" >&2
swift build -c release --product plinthd >&2
plinthd="$(swift build -c release --show-bin-path)/plinthd"

venv=Benchmarks/.venv-mlflow
if [ ! -x "$venv/bin/mlflow" ]; then
  echo "==> creating $venv with mlflow (pip)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q mlflow >&2
fi
"$venv/bin/python" -c "import plinth" 2>/dev/null || "$venv/bin/python" -m pip install -q -e Clients/python >&2

mkdir -p Benchmarks/results
"$venv/bin/python" Benchmarks/tracking/bench.py --plinthd "$plinthd" --out Benchmarks/results/tracking.json "$@"
