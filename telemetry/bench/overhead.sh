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
  taskset -c 0 "$bin" ping "$port" "$1" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c32 -d2s "http://127.0.0.1:$port/ping" >/dev/null   # warm-up
  local rps; rps=$(taskset -c 1 wrk -t1 -c32 -d"${dur}s" "http://127.0.0.1:$port/ping" | awk '/Requests\/sec/ {print $2}')
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rps"
}
off=$(run off); on=$(run on); off2=$(run off); on2=$(run on)
python3 - "$off" "$on" "$off2" "$on2" <<'PY'
import sys
off, on, off2, on2 = map(float, sys.argv[1:])
o, n = (off + off2) / 2, (on + on2) / 2
print(f"telemetry off: {off:.0f} / {off2:.0f} req/s  (mean {o:.0f})")
print(f"telemetry on : {on:.0f} / {on2:.0f} req/s  (mean {n:.0f})")
print(f"throughput loss: {100 * (1 - n / o):.1f}%  ({1e6 / n - 1e6 / o:.1f} us of server CPU per request)")
PY
