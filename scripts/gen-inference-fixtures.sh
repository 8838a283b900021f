#!/usr/bin/env bash
# Regenerates Tests/PlinthInferenceTests/Fixtures: trains small models with
# XGBoost, LightGBM and scikit-learn and records their predictions, so the
# Swift tests can check Plinth scores every row as the original does.
# Installs the libraries into Benchmarks/.venv-inference (git-ignored, shared with the inference benchmark) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=Benchmarks/.venv-inference
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Pinned: the committed fixtures were made with these (see Fixtures/versions.txt).
"$venv/bin/pip" install -q xgboost==3.2.0 lightgbm==4.7.0 scikit-learn==1.9.1 numpy==2.4.6 pandas==3.1.2
"$venv/bin/python" scripts/gen_inference_fixtures.py "$@"
echo "fixtures written to ${1:-Tests/PlinthInferenceTests/Fixtures}"
