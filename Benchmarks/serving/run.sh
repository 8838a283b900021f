#!/usr/bin/env bash
# Benchmarks/serving/run.sh (also `Benchmarks/run.sh serving`): issue 5's
# benchmark. Predict end to end over TCP with plinth-bench (one entity, 32
# features from two feature views, an XGBoost model of 100 trees of depth 6),
# side by side in one run with
#   (a) Feast's Python SDK online read + xgboost's Python predict, and
#   (b) a C reference: a redis-server GET of the packed features + XGBoost's
#       C API predict (stack_b.c),
# plus the two terms of the latency target measured alone: a Redis GET with
# plinth-bench's client code, and Plinth's in-process inference time.
# Writes Benchmarks/results/serving.json and prints the table with the ratios
# against the issue's targets.
#
# It sets up what it needs: release builds, redis-server (apt-get when
# missing), Benchmarks/.venv-serving (Feast, XGBoost). plinthd and
# redis-server listen on free loopback ports, live in a temporary directory
# and are stopped by PID on exit. Every load is bounded in count and time.
# Knobs (environment): ENTITIES (100000), DURATION (measured seconds per
# system and case, 10), WARMUP (1), ROUNDS (alternating Plinth/Redis rounds
# of the 1-connection case, 5), CONNECTIONS (32), FEAST_ENTITIES (all),
# FEAST_REQUESTS (3000 per store), FEAST_STORES (redis,sqlite), SKIP_CALLGRIND
# (1: no instruction counts), CALLGRIND_REQUESTS (2000).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH="$ROOT/Benchmarks"
HERE="$BENCH/serving"
ENTITIES=${ENTITIES:-100000}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-32}
FEAST_ENTITIES=${FEAST_ENTITIES:-$ENTITIES}
FEAST_REQUESTS=${FEAST_REQUESTS:-3000}
FEAST_STORES=${FEAST_STORES:-redis,sqlite}
SKIP_CALLGRIND=${SKIP_CALLGRIND:-0}
CALLGRIND_REQUESTS=${CALLGRIND_REQUESTS:-2000}

log() { echo "serving: $*" >&2; }

# shellcheck source=../common.sh
. "$BENCH/common.sh"

# --- builds and peers -------------------------------------------------------
cd "$ROOT"
build_release_binaries
ensure_redis_server
VENV="$BENCH/.venv-serving"
if ! "$VENV/bin/python" -c "import feast, xgboost, redis" 2>/dev/null; then
  log "installing Feast and XGBoost into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$HERE/requirements.txt" >&2
fi
PY="$VENV/bin/python"
export PYTHONPATH="$ROOT/Clients/python${PYTHONPATH:+:$PYTHONPATH}"
LIBXGBOOST=$("$PY" -c 'import os, xgboost; print(os.path.join(os.path.dirname(xgboost.__file__), "lib", "libxgboost.so"))')

bench_workdir serving

CC=${CC:-cc}
log "compiling stack (b) with $CC"
"$CC" -O2 -o "$WORK/stack_b" "$HERE/stack_b.c" -ldl -lpthread -lm

start_plinthd plinthd
start_redis
log "plinthd on $PLINTH_ADDR (pid $PLINTH_PID), redis-server on $REDIS_ADDR (pid $REDIS_PID)"

OUT="$WORK/results"
DATA="$WORK/data"
mkdir -p "$OUT" "$DATA"
"$PY" - "$OUT/machine.json" <<EOF
import json, os, subprocess, sys, datetime
def sh(c):
    return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "command": "Benchmarks/run.sh serving",
    "commit": sh("git -C '$ROOT' rev-parse --short HEAD") + ("" if sh("git -C '$ROOT' status --porcelain --untracked-files=no") == "" else "-dirty"),
    "cpus": os.cpu_count(),
    "cpu_model": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
    "load_average_at_start": open("/proc/loadavg").read().split()[:3],
    "redis_version": sh("redis-server --version").split("v=")[1].split()[0],
    "swift": sh("swift --version 2>&1 | head -1"),
    "settings": {"entities": $ENTITIES, "duration": $DURATION, "warmup": $WARMUP, "rounds": $ROUNDS,
                 "connections": $CONNECTIONS, "feast_entities": $FEAST_ENTITIES, "feast_requests": $FEAST_REQUESTS,
                 "feast_stores": "$FEAST_STORES"},
}, open(sys.argv[1], "w"))
EOF

# --- data -------------------------------------------------------------------
log "data: $ENTITIES entities x 32 float32 in two views, an XGBoost model (100 trees, depth 6), into plinthd and redis"
"$PY" "$HERE/prepare.py" "$DATA" --plinth "$PLINTH_ADDR" --redis-port "$REDIS_PORT" --entities "$ENTITIES"
cp "$DATA/meta.json" "$OUT/data.json"
# Redis GET alone, through plinth-bench's own client code: bench:<id> keys
# holding the 32 features in Plinth's packed row layout.
"$BIN/plinth-bench" redis-load --address "$REDIS_ADDR" --entities "$ENTITIES" --features 32 --json >"$OUT/redis-load.json"

# --- measurements -----------------------------------------------------------
log "in-process inference of the same model (plinth-bench infer)"
"$BIN/plinth-bench" infer --model "$DATA/fraud.json" --rows "$DATA/features.f32" --json >"$OUT/infer.json"

PREDICT=(--model fraud@production --key-column user_id --expected "$DATA/expected.f64" --key-space "$ENTITIES"
         --warmup "$WARMUP" --json)
log "1 connection: Plinth Predict and Redis GET, $DURATION s each in $ROUNDS alternating rounds"
"$BIN/plinth-bench" compare --operation predict --plinth "$PLINTH_ADDR" --redis "$REDIS_ADDR" --features 32 \
  --rounds "$ROUNDS" --duration "$DURATION" --connections 1 "${PREDICT[@]}" >"$OUT/plinth-1.json" \
  || log "Plinth Predict failed (1 connection): see $OUT/plinth-1.json"
# The same 32 features read with GetOnlineFeatures (no model): how much of a
# Predict is the read.
REFERENCES=$("$PY" -c 'import json, sys; print(",".join(json.load(open(sys.argv[1]))["features"]))' "$DATA/meta.json")
log "1 connection: Plinth GetOnlineFeatures of the same 32 features and Redis GET, $DURATION s each in $ROUNDS alternating rounds"
"$BIN/plinth-bench" compare --operation features --references "$REFERENCES" --plinth "$PLINTH_ADDR" --redis "$REDIS_ADDR" \
  --features 32 --rounds "$ROUNDS" --duration "$DURATION" --connections 1 "${PREDICT[@]}" >"$OUT/features-1.json" \
  || log "Plinth GetOnlineFeatures failed (1 connection): see $OUT/features-1.json"
log "1 connection: stack (b), GET + XGBoost C API, and the GET alone with the same C client"
"$WORK/stack_b" "$LIBXGBOOST" "$DATA/fraud.json" "$REDIS_PORT" "$ENTITIES" "$DATA/expected.f64" 1 "$DURATION" "$WARMUP" \
  predict 42 "$REDIS_PID" >"$OUT/stack-b-1.json"
"$WORK/stack_b" "$LIBXGBOOST" "$DATA/fraud.json" "$REDIS_PORT" "$ENTITIES" "$DATA/expected.f64" 1 "$DURATION" "$WARMUP" \
  get 42 "$REDIS_PID" >"$OUT/stack-b-get-1.json"

log "$CONNECTIONS connections: Plinth Predict, then stack (b), $DURATION s each, with CPU accounting"
"$BIN/plinth-bench" predict --address "$PLINTH_ADDR" --connections "$CONNECTIONS" --duration "$DURATION" \
  --server-pid "$PLINTH_PID" "${PREDICT[@]}" >"$OUT/plinth-$CONNECTIONS.json" \
  || log "Plinth Predict failed ($CONNECTIONS connections): see $OUT/plinth-$CONNECTIONS.json"
kill "$PLINTH_PID" 2>/dev/null || true
wait "$PLINTH_PID" 2>/dev/null || true
"$WORK/stack_b" "$LIBXGBOOST" "$DATA/fraud.json" "$REDIS_PORT" "$ENTITIES" "$DATA/expected.f64" "$CONNECTIONS" \
  "$DURATION" "$WARMUP" predict 43 "$REDIS_PID" >"$OUT/stack-b-$CONNECTIONS.json"

log "stack (a): Feast ($FEAST_STORES) + xgboost's Python predict, up to $FEAST_REQUESTS requests per store"
"$PY" "$HERE/stack_a.py" "$DATA" --redis-port "$REDIS_PORT" --stores "$FEAST_STORES" --entities "$FEAST_ENTITIES" \
  --requests "$FEAST_REQUESTS" >"$OUT/stack-a.json"

if [ "$SKIP_CALLGRIND" != 1 ]; then
  if command -v valgrind >/dev/null; then
    log "instructions per request under callgrind (a few minutes)"
    N="$CALLGRIND_REQUESTS" "$HERE/instructions.sh" "$BIN" "$WORK/plinthd-data" "$WORK" "$ENTITIES" "$REFERENCES" \
      >"$OUT/instructions.json" || log "callgrind step failed"
    mkdir -p "$BENCH/results"
    cp "$WORK/predict-profile.txt" "$BENCH/results/serving-predict-profile.txt" 2>/dev/null || true
  else
    log "valgrind is not installed: no instruction counts (apt-get install valgrind)"
  fi
fi

mkdir -p "$BENCH/results"
"$PY" "$HERE/report.py" "$OUT" --connections "$CONNECTIONS" --out "$BENCH/results/serving.json"
