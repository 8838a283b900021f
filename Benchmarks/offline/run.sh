#!/usr/bin/env bash
# Offline-face benchmark (issue 6): Plinth's point-in-time join against
# polars join_asof, DuckDB ASOF JOIN, pandas merge_asof and Feast's
# get_historical_features (file and DuckDB offline stores), same data, one
# run, results cross-checked. Figures go to docs/benchmarks.md by hand.
#
#   Benchmarks/offline/run.sh [--entities N] [--events N] [--spine N] [--feast-spine N] [--engines LIST]
#
# Defaults are the issue's scale: 100,000 entities x 100 events (10.1M
# feature rows with 1% duplicates), a 1,000,000-row spine; Feast gets the
# first --feast-spine rows of the spine (default 10,000) because its file
# store needs minutes per 10k rows. Python packages go into
# Benchmarks/.venv-offline (git-ignored); plinthd is built in release mode.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=Benchmarks/.venv-offline
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -c "import polars, duckdb, pandas, pyarrow, feast" 2>/dev/null || \
  "$venv/bin/pip" install -q polars duckdb pandas pyarrow numpy 'feast[duckdb]'

swift build -c release --product plinthd >&2
plinthd="$(swift build -c release --show-bin-path)/plinthd"
work="${PLINTH_BENCH_DIR:-Benchmarks/results/offline}"
rm -rf "$work"
mkdir -p "$work"
exec "$venv/bin/python" Benchmarks/offline/bench.py --workdir "$work" --plinthd "$plinthd" --aggregation-events 10000000 "$@"
