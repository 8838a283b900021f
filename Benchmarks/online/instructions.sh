#!/usr/bin/env bash
# Benchmarks/online/instructions.sh: instructions the server executes per
# online read, plinthd against redis-server, counted by valgrind's callgrind.
# Unlike latency, an instruction count does not depend on what else the
# (shared) machine is doing, so it is the steadiest figure of the server's
# own work per request. Kernel time (syscalls, wake-ups) is not counted.
#
#   instructions.sh BIN_DIR PLINTH_DATA_DIR WORK_DIR FEATURES ENTITIES > instructions.json
#
# PLINTH_DATA_DIR must hold the bench view loaded with ENTITIES entities
# (run.sh's plinthd, stopped).
# Redis gets 100,000 keys (loading more under valgrind takes minutes; a GET
# is a hash lookup whose cost does not grow with the key count). Each case:
# a warm-up of N/5 requests, the counters zeroed, N requests, then the
# server is stopped and its totals read (its shutdown adds a little).
set -euo pipefail
shopt -s inherit_errexit
BIN=$1 DATA=$2 WORK=$3 FEATURES=$4 ENTITIES=$5
N1=${N1:-2000}
N100=${N100:-200}
log() { echo "instructions.sh: $*" >&2; }

# valgrind 3.19 cannot read the DWARF 5 debug info Swift 6 writes; the
# symbol table is enough for callgrind.
strip --strip-debug -o "$WORK/plinthd-nodebug" "$BIN/plinthd"

total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# count NAME K N START_COMMAND... : runs the server under callgrind and prints Ir/request.
count() {
  local name=$1 k=$2 n=$3; shift 3
  local out="$WORK/callgrind-$name-$k.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$WORK/valgrind-$name-$k.log" 2>&1 &
  local pid=$!
  local address
  if [ "$name" = plinth ]; then
    for _ in $(seq 600); do [ -s "$WORK/cg-ready" ] && break; sleep 0.1; done
    address=$(head -1 "$WORK/cg-ready")
    "$BIN/plinth-bench" get --address "$address" --features "$FEATURES" --key-space "$ENTITIES" --entities-per-request "$k" \
      --requests $((n / 5)) --warmup 0 --time-limit 300 >/dev/null
  else
    address=127.0.0.1:$REDIS_PORT
    for _ in $(seq 600); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    "$BIN/plinth-bench" redis-load --address "$address" --features "$FEATURES" --entities 100000 --batch 1000 \
      --connections 1 --pipeline 1 >/dev/null 2>&1
    "$BIN/plinth-bench" redis-get --address "$address" --features "$FEATURES" --key-space 100000 \
      --entities-per-request "$k" --requests $((n / 5)) --warmup 0 --time-limit 300 >/dev/null
  fi
  callgrind_control -z "$pid" >/dev/null 2>&1
  if [ "$name" = plinth ]; then
    "$BIN/plinth-bench" get --address "$address" --features "$FEATURES" --key-space "$ENTITIES" --entities-per-request "$k" \
      --requests "$n" --warmup 0 --time-limit 300 >/dev/null
  else
    "$BIN/plinth-bench" redis-get --address "$address" --features "$FEATURES" --key-space 100000 \
      --entities-per-request "$k" --requests "$n" --warmup 0 --time-limit 300 >/dev/null
  fi
  kill "$pid"
  wait "$pid" || true
  echo $(( $(total "$out") / n ))
}

log "plinthd under callgrind: $N1 requests of 1 entity, $N100 of 100"
PLINTH_START=("$WORK/plinthd-nodebug" --data-dir "$DATA" --listen 127.0.0.1:0 --ready-file "$WORK/cg-ready" --log-level warning)
rm -f "$WORK/cg-ready"; p1=$(count plinth 1 "$N1" "${PLINTH_START[@]}")
rm -f "$WORK/cg-ready"; p100=$(count plinth 100 "$N100" "${PLINTH_START[@]}")
log "redis-server under callgrind: $N1 GETs, $N100 MGETs of 100"
REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
REDIS_START=(redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no)
r1=$(count redis 1 "$N1" "${REDIS_START[@]}")
r100=$(count redis 100 "$N100" "${REDIS_START[@]}")
echo "{\"plinth\": {\"1\": $p1, \"100\": $p100}, \"redis\": {\"1\": $r1, \"100\": $r100}, \"requests\": {\"1\": $N1, \"100\": $N100}}"
