#!/usr/bin/env bash
# Per-request overhead of the telemetry middleware: requests/second of a trivial
# endpoint with every exporter on and 100% sampling, against the same server
# with no telemetry at all. wrk (Debian package) drives both, on loopback.
# The server is pinned to core 0 and wrk to core 1 so they do not fight.
#   telemetry/bench/overhead.sh [DURATION_SECONDS]
# Needs the local stack up (the exporters ship to it) and a release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
dur=${1:-15}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }
cargo build -q --release -p glasshouse-telemetry --bin glasshouse-telemetry-demo
bin=target/release/glasshouse-telemetry-demo
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run() { # run on|off -> requests/s
  # The services' allocator settings (deploy/local/services.sh, deploy/docker/Dockerfile).
  MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0 taskset -c 0 "$bin" ping "$port" "$1" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c32 -d2s "http://127.0.0.1:$port/ping" >/dev/null   # warm-up
  local t0; t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local out; out=$(taskset -c 1 wrk -t1 -c32 -d"${dur}s" "http://127.0.0.1:$port/ping")
  local t1; t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local rps reqs; rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out"); reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  # requests/s, and the server's own CPU time per request in microseconds
  # (clock ticks are 1/100 s): independent of what else competes for the cores.
  echo "$rps $(python3 -c "print(($t1 - $t0) * 10000 / $reqs)")"
}
off=$(run off); on=$(run on); off2=$(run off); on2=$(run on)
python3 - $off $on $off2 $on2 <<'PY'
import sys
off, coff, on, con, off2, coff2, on2, con2 = map(float, sys.argv[1:])
o, n = (off + off2) / 2, (on + on2) / 2
co, cn = (coff + coff2) / 2, (con + con2) / 2
print(f"telemetry off: {off:.0f} / {off2:.0f} req/s (mean {o:.0f}); server CPU {co:.1f} us/request")
print(f"telemetry on : {on:.0f} / {on2:.0f} req/s (mean {n:.0f}); server CPU {cn:.1f} us/request")
print(f"throughput loss: {100 * (1 - n / o):.1f}%; extra server CPU per request: {cn - co:.1f} us")
PY
