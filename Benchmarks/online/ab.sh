#!/usr/bin/env bash
# Benchmarks/online/ab.sh: two builds of plinthd side by side, same load,
# alternating rounds, so a change is judged against its baseline on the same
# machine at the same moment (absolute figures move with the shared machine).
#
#   Benchmarks/online/ab.sh BASE_BIN NEW_BIN [CONNECTIONS] [PIPELINE] [ROUNDS]
#
# BASE_BIN, NEW_BIN: release bin folders holding plinthd (a baseline built
# with e.g. `git worktree add /tmp/base REV && (cd /tmp/base && swift build
# -c release --product plinthd)`). Each daemon gets a fresh data directory
# on 127.0.0.1 and 100,000 entities x 16 float32; each round runs
# `plinth-bench get` (from NEW_BIN, or this tree's release build) for 5 s
# against one, then the other. Prints entities/s and p50 µs per round.
set -euo pipefail
BASE=$1 NEW=$2 CONNECTIONS=${3:-32} PIPELINE=${4:-1} ROUNDS=${5:-4}
BENCH_BIN=$NEW
[ -x "$BENCH_BIN/plinth-bench" ] || BENCH_BIN=$(cd "$(dirname "$0")/../.." && swift build -c release --show-bin-path)
W=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$W"' EXIT
start() {
  "$1/plinthd" --data-dir "$W/$2" --listen 127.0.0.1:0 --ready-file "$W/$2.ready" --log-level warning >"$W/$2.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$W/$2.ready" ] && break; sleep 0.1; done
  [ -s "$W/$2.ready" ] || { cat "$W/$2.log" >&2; exit 1; }
  "$BENCH_BIN/plinth-bench" load --address "$(head -1 "$W/$2.ready")" --entities 100000 --features 16 --batch 10000 --json >/dev/null
}
start "$BASE" base
start "$NEW" new
for round in $(seq "$ROUNDS"); do
  for who in base new; do
    "$BENCH_BIN/plinth-bench" get --address "$(head -1 "$W/$who.ready")" --key-space 100000 --features 16 \
      --connections "$CONNECTIONS" --pipeline "$PIPELINE" --duration 5 --json 2>/dev/null |
      python3 -c "import json, sys; d = json.load(sys.stdin); print('round $round $who:', round(d['entities_per_second']), 'entities/s, p50', d['latency_micros']['p50'], 'µs')"
  done
done
