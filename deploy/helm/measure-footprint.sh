#!/usr/bin/env bash
# Measures the three services' memory (RSS) and CPU, idle and under the load
# runner, against the running local stack: the source of the chart's
# requests/limits (deploy/README.md, "Resources").
#
#   deploy/helm/measure-footprint.sh [RATE] [DURATION]      default 20 iterations/s for 60s
#
# Uses release binaries (debug builds are not representative) from GH_BIN
# (default target/release: `cargo build --release -p glasshouse-order
# -p glasshouse-inventory -p glasshouse-notification -p glasshouse-loadtest
# -p glasshouse-platform --bins`). Each service gets a scratch database, its own
# topic prefix and consumer groups and a free port, so nothing shared is touched;
# the scratch databases are dropped at the end. Prints one table.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
set -a; source "$REPO/deploy/local/ports.env"; set +a
RATE=${1:-20}
DURATION=${2:-60s}
BIN=${GH_BIN:-$REPO/target/release}
IDLE_SECONDS=${GH_IDLE_SECONDS:-20}
for b in glasshouse-order glasshouse-inventory glasshouse-notification glasshouse-loadtest glasshouse-dev-token glasshouse-inventory-seed; do
  [[ -x $BIN/$b ]] || { echo "missing $BIN/$b: build the release binaries first (see the header)" >&2; exit 2; }
done
say() { printf '%s\n' "$*" >&2; }

W=$(mktemp -d "${TMPDIR:-/tmp}/gh-footprint.XXXXXX")
TAG="fp$(date +%s)$$"
PG="postgres://glasshouse:glasshouse@127.0.0.1:$GH_POSTGRES_PORT"
MY=(mysql -h 127.0.0.1 -P "$GH_MARIADB_PORT" -u glasshouse -pglasshouse)
psql "$PG/postgres" -qc "CREATE DATABASE $TAG" >/dev/null
"${MY[@]}" -e "CREATE DATABASE $TAG"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do timeout 30 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $TAG WITH (FORCE)" >/dev/null || true
  "${MY[@]}" -e "DROP DATABASE IF EXISTS $TAG" || true
  rm -rf "$W"
}
trap cleanup EXIT

"$BIN/glasshouse-dev-token" init --dir "$W/jwt" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A PORT PID
for s in inventory order notification; do PORT[$s]=$(free_port); done

env_of() { # env_of NAME
  local s=$1
  echo "APP_HTTP__PORT=${PORT[$s]}"
  echo "APP_AUTH__JWKS__FILE=$W/jwt/jwks.json"
  echo "APP_KAFKA__BROKERS=127.0.0.1:$GH_KAFKA_PORT"
  echo "APP_KAFKA__TOPIC_PREFIX=$TAG."
  echo "APP_KAFKA__GROUP_ID=$TAG.$s"
  echo "APP_TELEMETRY__TRACES__ENDPOINT=http://127.0.0.1:$GH_JAEGER_OTLP_GRPC_PORT"
  echo "APP_TELEMETRY__LOGS__LOKI__URL=http://127.0.0.1:$GH_VICTORIALOGS_PORT/insert"
  echo "APP_TELEMETRY__LOGS__ELASTICSEARCH__URL=http://127.0.0.1:$GH_OPENSEARCH_PORT"
  echo "APP_FAULTS__FILE=$W/$s-faults.json"
  case $s in
    order) echo "APP_DATABASE__URL=$PG/$TAG"; echo "APP_INVENTORY__BASE_URL=http://127.0.0.1:${PORT[inventory]}";;
    inventory) echo "APP_DATABASE__URL=mysql://glasshouse:glasshouse@127.0.0.1:$GH_MARIADB_PORT/$TAG";;
    notification) echo "APP_DATABASE__URL=mongodb://127.0.0.1:$GH_FERRETDB_PORT/"; echo "APP_DATABASE__NAME=$TAG";;
  esac
}

for s in inventory order notification; do
  env $(env_of "$s") "$BIN/glasshouse-$s" >"$W/$s.log" 2>&1 </dev/null &
  PID[$s]=$!; PIDS+=("$!")
  deadline=$((SECONDS + 90))
  until curl -fs -o /dev/null "http://127.0.0.1:${PORT[$s]}/health/ready"; do
    kill -0 "${PID[$s]}" 2>/dev/null || { say "$s exited:"; tail -20 "$W/$s.log" >&2; exit 1; }
    (( SECONDS < deadline )) || { say "$s not ready in 90s"; tail -20 "$W/$s.log" >&2; exit 1; }
    sleep 0.3
  done
done
env $(env_of inventory) "$BIN/glasshouse-inventory-seed" >/dev/null

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# Idle: after start-up, no requests.
declare -A IDLE_RSS IDLE_CPU0 LOAD_MAX LOAD_CPU0 LOAD_CPU1 AFTER_RSS
for s in "${!PID[@]}"; do IDLE_CPU0[$s]=$(cpu_ticks "${PID[$s]}"); done
sleep "$IDLE_SECONDS"
for s in "${!PID[@]}"; do IDLE_RSS[$s]=$(rss_kib "${PID[$s]}"); done
declare -A IDLE_CPU
for s in "${!PID[@]}"; do IDLE_CPU[$s]=$(( $(cpu_ticks "${PID[$s]}") - IDLE_CPU0[$s] )); done

# Load: the order-flow scenario at RATE iterations/s.
TOKENS=""
for i in $(seq 1 20); do TOKENS+="$("$BIN/glasshouse-dev-token" mint --dir "$W/jwt" --sub "fp-customer-$i" --role customer --ttl 3600)"$'\n'; done
for s in "${!PID[@]}"; do LOAD_CPU0[$s]=$(cpu_ticks "${PID[$s]}"); LOAD_MAX[$s]=0; done
start=$SECONDS
GLASSHOUSE_LOADTEST_TOKEN="$TOKENS" "$BIN/glasshouse-loadtest" run --config "$REPO/loadtest/scenarios/order-flow.yaml" \
  --rate "$RATE" --duration "$DURATION" --no-metrics --quiet --out "$W/load" \
  --target "order=http://127.0.0.1:${PORT[order]}" --target "inventory=http://127.0.0.1:${PORT[inventory]}" \
  --target "notification=http://127.0.0.1:${PORT[notification]}" >"$W/load.log" 2>&1 &
LOAD=$!
while kill -0 "$LOAD" 2>/dev/null; do
  for s in "${!PID[@]}"; do r=$(rss_kib "${PID[$s]}"); (( r > LOAD_MAX[$s] )) && LOAD_MAX[$s]=$r; done
  sleep 1
done
wait "$LOAD" || say "the load run reported failed thresholds (see below); the footprint is still measured"
elapsed=$((SECONDS - start))
for s in "${!PID[@]}"; do LOAD_CPU1[$s]=$(( $(cpu_ticks "${PID[$s]}") - LOAD_CPU0[$s] )); AFTER_RSS[$s]=$(rss_kib "${PID[$s]}"); done
sed -n '/^order-flow:/,$p' "$W/load.log" | head -20 >&2 || true

printf '\nrelease binaries: %s (built %s)\nload: order-flow at %s it/s for %s (%ss wall)\n\n' "$BIN" "$(date -u -r "$BIN/glasshouse-order" +%FT%TZ)" "$RATE" "$DURATION" "$elapsed"
printf '%-13s %12s %14s %14s %12s %14s %14s\n' service idle_rss_MiB idle_cpu_mcore load_peak_MiB after_MiB peak_hwm_MiB load_cpu_mcore
for s in order inventory notification; do
  p=${PID[$s]}
  printf '%-13s %12.1f %14d %14.1f %12.1f %14.1f %14d\n' "$s" \
    "$(bc -l <<<"${IDLE_RSS[$s]}/1024")" $(( IDLE_CPU[$s] * 1000 / HZ / IDLE_SECONDS )) \
    "$(bc -l <<<"${LOAD_MAX[$s]}/1024")" "$(bc -l <<<"${AFTER_RSS[$s]}/1024")" "$(bc -l <<<"$(hwm_kib "$p")/1024")" \
    $(( LOAD_CPU1[$s] * 1000 / HZ / (elapsed > 0 ? elapsed : 1) ))
done
