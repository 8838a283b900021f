#!/usr/bin/env bash
# Benchmarks/serving/instructions.sh: instructions plinthd executes per
# Predict (one entity, the serving benchmark's model) and per
# GetOnlineFeatures of the same 32 features, counted by valgrind's
# callgrind. An instruction count does not move with the shared machine's
# load, so it tells the server's own work apart from the kernel's and the
# scheduler's. Kernel time (syscalls, wake-ups) is not counted.
#
#   instructions.sh BIN_DIR PLINTH_DATA_DIR WORK_DIR ENTITIES REFERENCES > instructions.json
#
# PLINTH_DATA_DIR holds run.sh's data (plinthd stopped). Each case: plinthd
# under callgrind, a warm-up of N/5 requests (the model loads on the first),
# the counters zeroed, N requests, then plinthd is stopped and its totals
# read (its shutdown adds a little). The Predict run's inclusive profile is
# kept in WORK_DIR/predict-profile.txt.
set -euo pipefail
shopt -s inherit_errexit
BIN=$1 DATA=$2 WORK=$3 ENTITIES=$4 REFERENCES=$5
N=${N:-2000}
log() { echo "instructions.sh: $*" >&2; }

# valgrind 3.19 cannot read the DWARF 5 debug info Swift 6 writes; the
# symbol table is enough for callgrind.
strip --strip-debug -o "$WORK/plinthd-nodebug" "$BIN/plinthd"

total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# count predict|features: prints instructions per request of that plinth-bench command.
count() {
  local operation=$1
  local out="$WORK/callgrind-$operation.out"
  rm -f "$WORK/cg-ready"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$WORK/plinthd-nodebug" --data-dir "$DATA" \
    --listen 127.0.0.1:0 --ready-file "$WORK/cg-ready" --log-level warning >"$WORK/valgrind-$operation.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do [ -s "$WORK/cg-ready" ] && break; sleep 0.1; done
  local address
  address=$(head -1 "$WORK/cg-ready")
  local cmd=(predict --address "$address")
  if [ "$operation" = features ]; then cmd=(features --address "$address" --references "$REFERENCES"); fi
  "$BIN/plinth-bench" "${cmd[@]}" --key-space "$ENTITIES" --requests $((N / 5)) --warmup 0 --time-limit 600 >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  "$BIN/plinth-bench" "${cmd[@]}" --key-space "$ENTITIES" --requests "$N" --warmup 0 --time-limit 600 >/dev/null
  kill "$pid"
  wait "$pid" || true
  echo $(( $(total "$out") / N ))
}

log "plinthd under callgrind: $N Predicts, then $N GetOnlineFeatures of the same features"
predict=$(count predict)
features=$(count features)
# Inclusive, demangled when swift is at hand; divide by N for per request.
demangle() { if command -v swift >/dev/null; then swift demangle --simplified; else cat; fi; }
callgrind_annotate --inclusive=yes "$WORK/callgrind-predict.out" 2>/dev/null | head -200 | demangle \
  >"$WORK/predict-profile.txt" || true
echo "{\"predict\": $predict, \"get_online_features_same_features\": $features, \"requests\": $N}"
