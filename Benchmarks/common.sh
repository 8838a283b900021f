# Shared by the benchmark scripts that run plinthd beside redis-server
# (online, serving): release builds, the peers' install, free loopback
# ports, and processes started and stopped by PID. Source it after setting
# ROOT (the repository) and defining log(); call bench_workdir first.

# Builds plinthd and plinth-bench in release mode; sets BIN.
build_release_binaries() {
  log "building release binaries"
  # One product per call: given several --product flags, swift build builds only the last.
  (cd "$ROOT" && swift build -c release --product plinthd >&2 && swift build -c release --product plinth-bench >&2)
  BIN=$(cd "$ROOT" && swift build -c release --show-bin-path)
}

ensure_redis_server() {
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server"
    apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2
  fi
}

# Makes WORK (a temporary directory named after $1) and stops every process
# in PIDS and removes WORK on exit.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/plinth-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts plinthd on a fresh data directory named $1 (more plinthd flags
# after it); sets PLINTH_ADDR and PLINTH_PID.
start_plinthd() {
  local name=$1; shift
  rm -f "$WORK/$name.ready"
  "$BIN/plinthd" --data-dir "$WORK/$name-data" --listen 127.0.0.1:0 --ready-file "$WORK/$name.ready" \
    --log-level warning "$@" >"$WORK/$name.log" 2>&1 &
  PLINTH_PID=$!
  PIDS+=("$PLINTH_PID")
  for _ in $(seq 100); do [ -s "$WORK/$name.ready" ] && break; sleep 0.1; done
  [ -s "$WORK/$name.ready" ] || { cat "$WORK/$name.log" >&2; log "plinthd did not start"; exit 1; }
  PLINTH_ADDR=$(head -1 "$WORK/$name.ready")
}

# Starts redis-server without persistence on a free port; sets REDIS_PORT,
# REDIS_PID and REDIS_ADDR.
start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  REDIS_ADDR=127.0.0.1:$REDIS_PORT
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
