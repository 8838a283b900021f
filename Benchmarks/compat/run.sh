#!/usr/bin/env bash
# Compatibility check: Plinth's importers against the libraries that wrote
# the models. models.py trains a zoo of small XGBoost, LightGBM and
# scikit-learn models and compares `plinthctl score` with each library's
# own predict; searches.py (when present) checks plinthd's searches. Not
# part of ./test.sh. Exits non-zero when either fails.
#   Benchmarks/run.sh compat [--only SUBSTRING] [--keep DIR]   (arguments go to models.py)
# Needs network access to PyPI the first time (into Benchmarks/compat/.venv,
# git-ignored). COMPAT_SEED_VENVS="DIR ..." copies the site-packages of
# existing virtualenvs of the same Python into a new .venv first, so pip
# only checks the pins (e.g. Benchmarks/.venv-inference and .venv-mlflow).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
log() { echo "[compat] $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  seeds="${COMPAT_SEED_VENVS-$ROOT/Benchmarks/.venv-inference $ROOT/Benchmarks/.venv-mlflow}"
  for seed in $seeds; do
    from="$seed/lib/$(basename "$(dirname "$site")")/site-packages"
    if [ -d "$from" ]; then
      log "seeding $venv from $seed"
      cp -a "$from/." "$site/"
    fi
  done
fi
log "installing the pinned libraries"
"$venv/bin/python" -m pip install -q xgboost==3.2.0 lightgbm==4.7.0 scikit-learn==1.9.1 numpy pandas mlflow==3.18.0 \
  onnxruntime
py="$venv/bin/python"

log "building plinthctl and plinthd (release)"
# One product per call: given several --product flags, swift build builds only the last.
(cd "$ROOT" && swift build -c release --product plinthctl >&2 && swift build -c release --product plinthd >&2)
BIN=$(cd "$ROOT" && swift build -c release --show-bin-path)

status=0
log "models.py"
"$py" "$here/models.py" --plinthctl "$BIN/plinthctl" "$@" || status=1
if [ -f "$here/searches.py" ]; then
  log "searches.py"
  "$py" "$here/searches.py" --plinthd "$BIN/plinthd" || status=1
else
  log "no searches.py yet; skipped"
fi
exit $status
