#!/usr/bin/env bash
# Benchmarks/online/run.sh (run as `Benchmarks/run.sh online`): issue 2's
# benchmark, plinthd's online reads and Push against redis-server (driven by
# the same client code) and Feast's Python SDK, in one run, reported as
# ratios (docs/benchmarks.md records the figures and the command).
#
# It sets up what it needs: release builds, redis-server (apt-get when
# missing), a virtualenv under Benchmarks/.venv for Feast. Servers listen on
# free loopback ports, live in a temporary directory, and are stopped by PID
# on exit. Every load is bounded in count and time. Knobs (environment):
# DURATION (measured seconds per system and read case), WARMUP (seconds per
# round), ROUNDS, ENTITIES, FEATURES, CONNECTIONS, DEPTH, BATCH,
# PUSH_CONNECTIONS, PUSH_PIPELINE, FEAST_ENTITIES, FEAST_REQUESTS,
# SKIP_FEAST, SKIP_NO_SYNC, SKIP_CALLGRIND.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$ROOT/Benchmarks"
HERE="$BENCH/online"
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-0.5}
ROUNDS=${ROUNDS:-5}
ENTITIES=${ENTITIES:-1000000}
FEATURES=${FEATURES:-16}
CONNECTIONS=${CONNECTIONS:-32}
DEPTH=${DEPTH:-16}
BATCH=${BATCH:-10000}
PUSH_CONNECTIONS=${PUSH_CONNECTIONS:-4}
PUSH_PIPELINE=${PUSH_PIPELINE:-2}
FEAST_ENTITIES=${FEAST_ENTITIES:-10000}
FEAST_REQUESTS=${FEAST_REQUESTS:-2000}
SKIP_FEAST=${SKIP_FEAST:-0}
SKIP_NO_SYNC=${SKIP_NO_SYNC:-0}
SKIP_CALLGRIND=${SKIP_CALLGRIND:-0}

log() { echo "run.sh: $*" >&2; }

# shellcheck source=../common.sh
. "$BENCH/common.sh"

# --- builds -----------------------------------------------------------------
cd "$ROOT"
build_release_binaries

# --- peers ------------------------------------------------------------------
ensure_redis_server
VENV="$BENCH/.venv"
if [ "$SKIP_FEAST" != 1 ]; then
  if ! "$VENV/bin/python" -c "import feast" 2>/dev/null; then
    log "installing Feast into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$HERE/requirements.txt" >&2
  fi
fi

bench_workdir bench
start_plinthd plinthd
start_redis
log "plinthd on $PLINTH_ADDR (sync on), redis-server on $REDIS_ADDR"

OUT="$WORK/results"
mkdir -p "$OUT"
{
  echo "{\"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"command\": \"Benchmarks/run.sh online\","
  echo " \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD || echo -dirty)\","
  echo " \"cpus\": $(nproc), \"cpu_model\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\","
  echo " \"load_average_at_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
  echo " \"redis_version\": \"$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')\","
  echo " \"swift\": \"$(swift --version 2>&1 | head -1)\","
  echo " \"settings\": {\"duration\": $DURATION, \"warmup\": $WARMUP, \"rounds\": $ROUNDS, \"entities\": $ENTITIES, \"features\": $FEATURES,"
  echo "   \"connections\": $CONNECTIONS, \"depth\": $DEPTH, \"batch\": $BATCH, \"push_connections\": $PUSH_CONNECTIONS,"
  echo "   \"push_pipeline\": $PUSH_PIPELINE, \"feast_entities\": $FEAST_ENTITIES}}"
} >"$OUT/machine.json"

LOAD=(--entities "$ENTITIES" --features "$FEATURES" --batch "$BATCH" --connections "$PUSH_CONNECTIONS" --pipeline "$PUSH_PIPELINE" --json)
log "Push: $ENTITIES rows x $FEATURES float32 into plinthd (durable), MSET into redis"
"$BIN/plinth-bench" load --address "$PLINTH_ADDR" "${LOAD[@]}" >"$OUT/load-plinth.json"
"$BIN/plinth-bench" redis-load --address "$REDIS_ADDR" "${LOAD[@]}" >"$OUT/load-redis.json"

# Each case alternates Plinth and Redis in ROUNDS rounds (plinth-bench
# compare), with the same keys for both, so load from elsewhere on the
# machine during the run falls on both systems.
READ=(--features "$FEATURES" --key-space "$ENTITIES" --duration "$DURATION" --warmup "$WARMUP" --rounds "$ROUNDS" --json)
read_case() {
  local name=$1; shift
  log "reads: $name ($*)"
  "$BIN/plinth-bench" compare --plinth "$PLINTH_ADDR" --redis "$REDIS_ADDR" "${READ[@]}" "$@" >"$OUT/read-$name.json"
}
read_case 1x1 --connections 1 --pipeline 1 --entities-per-request 1
read_case 1x100 --connections 1 --pipeline 1 --entities-per-request 100
read_case "${CONNECTIONS}x${DEPTH}" --connections "$CONNECTIONS" --pipeline "$DEPTH" --entities-per-request 1

stop_pid "$PLINTH_PID"
if [ "$SKIP_CALLGRIND" != 1 ]; then
  if command -v valgrind >/dev/null; then
    log "instructions per request under callgrind (takes a minute or two)"
    "$HERE/instructions.sh" "$BIN" "$WORK/plinthd-data" "$WORK" "$FEATURES" "$ENTITIES" >"$OUT/instructions.json"
  else
    log "valgrind is not installed: no instruction counts (apt-get install valgrind)"
  fi
fi
# Push again into fresh daemons: online only (what Redis's MSET does too),
# and with --no-sync.
start_plinthd plinthd-online
log "Push again, online face only, into a fresh plinthd (sync on)"
"$BIN/plinth-bench" load --address "$PLINTH_ADDR" --to online "${LOAD[@]}" >"$OUT/load-plinth-online.json"
stop_pid "$PLINTH_PID"
rm -rf "$WORK/plinthd-online-data"
if [ "$SKIP_NO_SYNC" != 1 ]; then
  start_plinthd plinthd-nosync --no-sync
  log "Push again into a fresh plinthd started with --no-sync"
  "$BIN/plinth-bench" load --address "$PLINTH_ADDR" "${LOAD[@]}" >"$OUT/load-plinth-nosync.json"
  stop_pid "$PLINTH_PID"
fi

if [ "$SKIP_FEAST" != 1 ]; then
  log "Feast: $FEAST_ENTITIES entities, get_online_features with SQLite and Redis online stores"
  "$VENV/bin/python" "$HERE/feast_online.py" --entities "$FEAST_ENTITIES" --features "$FEATURES" \
    --requests "$FEAST_REQUESTS" --redis-port "$REDIS_PORT" >"$OUT/feast.json"
fi

mkdir -p "$BENCH/results"
python3 "$HERE/report.py" "$OUT" --out "$BENCH/results/online-$(date -u +%Y%m%dT%H%M%SZ).json"
