#!/usr/bin/env bash
# Requests per second on ONE core: wrk vs glasshouse-loadtest, same run, same
# trivial loopback server (examples/hello_server.rs, pinned to another core).
#
#   loadtest/bench/vs-wrk.sh            # 10 s per measurement, 50 connections
#   DURATION=20 CONNS=100 loadtest/bench/vs-wrk.sh
#
# Prints wrk's figure, the runner's closed-model figure (50 VUs, no think
# time: the same shape as wrk -c50) and the ratio, then open-model runs at
# rising fractions of wrk's rate (OPEN_FRACTIONS) until one is not held.
# Needs: wrk (Debian package `wrk`), taskset (util-linux), 2+ cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DURATION="${DURATION:-10}"
CONNS="${CONNS:-50}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
command -v taskset >/dev/null || { echo "taskset is missing: apt-get install -y util-linux" >&2; exit 2; }

cargo build --release -q -p glasshouse-loadtest --bin glasshouse-loadtest --example hello_server
BIN=target/release/glasshouse-loadtest
SRV=target/release/examples/hello_server

work="$(mktemp -d)"
srv_pid=""
cleanup() { [[ -n $srv_pid ]] && kill "$srv_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

taskset -c "$SERVER_CPU" "$SRV" >"$work/server.out" &
srv_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
addr="$(sed -n 's/^listening on //p' "$work/server.out")"
[[ -n $addr ]] || { echo "hello_server did not start" >&2; exit 1; }
url="http://$addr"

scenario() { # scenario NAME LOAD-YAML
  cat >"$work/$1.yaml" <<YAML
scenario: bench-$1
targets: {app: "$url"}
load: $2
flows:
  - name: hello
    steps:
      - {step: http, name: hello, target: app, path: /hello}
metrics: {enabled: false}
report: {slowest: 5}
YAML
}
rps_of() { grep -m1 '"throughput_rps"' "$1/summary.json" | tr -dc '0-9.'; }
dropped_of() { grep -m1 '"dropped_iterations"' "$1/summary.json" | tr -dc '0-9'; }

echo "server: $url (cpu $SERVER_CPU); clients pinned to cpu $CLIENT_CPU; ${DURATION}s each, $CONNS connections"
taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d2s "$url/hello" >/dev/null # warm-up

taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url/hello" >"$work/wrk.txt"
wrk_rps="$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.txt")"

scenario closed "{model: closed, vus: $CONNS, duration: ${DURATION}s}"
taskset -c "$CLIENT_CPU" "$BIN" run --config "$work/closed.yaml" --out "$work/closed" --threads 1 --quiet >/dev/null
closed_rps="$(rps_of "$work/closed")"

# Open model: the highest of these fractions of wrk's rate that the runner
# holds on one core. Each run ramps from 0 over 2 s (an open model started
# cold at full rate spends its first second opening connections) and then
# holds the rate for DURATION; "held" = at least 99% of the scheduled
# arrivals completed and fewer than 0.1% dropped. max_in_flight is high so
# a short stall of the server is absorbed rather than counted as drops.
fracs="${OPEN_FRACTIONS:-0.3 0.4 0.5 0.6 0.7}"
open_best=""; open_lines=()
for frac in $fracs; do
  rate="$(awk -v w="$wrk_rps" -v f="$frac" 'BEGIN { printf "%d", w * f }')"
  scenario open "{model: ramping_rate, start_rate: 0, stages: [{duration: 2s, target: $rate}, {duration: ${DURATION}s, target: $rate}], max_in_flight: 10000}"
  taskset -c "$CLIENT_CPU" "$BIN" run --config "$work/open.yaml" --out "$work/open-$frac" --threads 1 --quiet >/dev/null 2>&1 || true
  requests="$(grep -m1 '"requests"' "$work/open-$frac/summary.json" | tr -dc '0-9')"
  dropped="$(dropped_of "$work/open-$frac")"
  lag99="$(grep -A7 '"scheduling_lag_ms"' "$work/open-$frac/summary.json" | grep -m1 '"p99"' | tr -dc '0-9.')"
  held="$(awk -v q="$requests" -v r="$rate" -v d="$dropped" -v n="$DURATION" 'BEGIN { a = r * (n + 1); print (q >= 0.99 * a && d < 0.001 * a) ? "held" : "not held" }')"
  open_lines+=("$(printf '%-44s %12s requests  (%s dropped, lag p99 %s ms: %s)' "glasshouse-loadtest open, $rate/s ($frac)" "$requests" "$dropped" "$lag99" "$held")")
  [[ $held == held ]] || break
  open_best="$frac"
done

ratio="$(awk -v a="$closed_rps" -v b="$wrk_rps" 'BEGIN { printf "%.2f", a / b }')"
printf '%-44s %12s req/s\n' "wrk -t1 -c$CONNS" "$wrk_rps"
printf '%-44s %12s req/s  (%s of wrk)\n' "glasshouse-loadtest closed, $CONNS VUs" "$closed_rps" "$ratio"
printf '%s\n' "${open_lines[@]}"
echo "open model holds ${open_best:-less than ${fracs%% *}} of wrk's rate on one core"
