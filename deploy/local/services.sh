#!/usr/bin/env bash
# The three Glasshouse services on the local stack, from release builds.
#
#   deploy/local/services.sh up      build (cached by cargo), dev JWT keys, start, wait ready, register with Prometheus
#   deploy/local/services.sh down    SIGTERM (graceful: drain, finish the message in hand, flush telemetry)
#   deploy/local/services.sh status
#   deploy/local/services.sh token SUB [ROLE]   mint a local dev token (ROLE customer|admin, default customer)
#
# Logs: $(deploy/local/stack home)/logs/{order,inventory,notification}.log; the stack must be up.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
set -a; source "$HERE/ports.env"; set +a
H="$("$HERE/stack" home)"
BIN="$REPO/target/release"
JWT="$H/etc/jwt"
SERVICES=(inventory order notification)

port_of() { case $1 in order) echo "$GH_ORDER_PORT";; inventory) echo "$GH_INVENTORY_PORT";; notification) echo "$GH_NOTIFICATION_PORT";; esac; }
say() { printf '%s\n' "$*" >&2; }
pidfile() { echo "$H/run/svc-$1.pid"; }
running() { local f; f=$(pidfile "$1"); [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null; }

build() {
  # Not quiet: a first build takes minutes, and cargo's own lines (one per crate
  # compiled, or its progress bar on a terminal) say what it is doing.
  say "building the services (release; the first build compiles a few hundred crates, several minutes on 2 cores; cargo caches it)..."
  (cd "$REPO" && cargo build --release --locked -p glasshouse-order -p glasshouse-inventory -p glasshouse-notification -p glasshouse-platform -p glasshouse-loadtest --bins)
}

# Every service reads the stack's addresses from the environment (APP_<SECTION>__<KEY>).
service_env() { # service_env NAME
  local name=$1
  echo "APP_HTTP__PORT=$(port_of "$name")"
  echo "APP_AUTH__JWKS__FILE=$JWT/jwks.json"
  echo "APP_KAFKA__BROKERS=127.0.0.1:$GH_KAFKA_PORT"
  echo "APP_TELEMETRY__TRACES__ENDPOINT=http://127.0.0.1:$GH_JAEGER_OTLP_GRPC_PORT"
  echo "APP_TELEMETRY__LOGS__LOKI__URL=http://127.0.0.1:$GH_VICTORIALOGS_PORT/insert"
  echo "APP_TELEMETRY__LOGS__ELASTICSEARCH__URL=http://127.0.0.1:$GH_OPENSEARCH_PORT"
  # Each service's fault flag file is relative to the stack home: $H/etc/<name>/faults.json.
  echo "GLASSHOUSE_HOME=$H"
  # mimalloc, lean (as the image sets it, deploy/docker/Dockerfile): lazy arena commit, freed pages returned at once.
  echo "MIMALLOC_ARENA_EAGER_COMMIT=0"
  echo "MIMALLOC_PURGE_DELAY=0"
  case $name in
    order)
      echo "APP_DATABASE__URL=postgres://glasshouse:glasshouse@127.0.0.1:$GH_POSTGRES_PORT/orders"
      echo "APP_INVENTORY__BASE_URL=http://127.0.0.1:$GH_INVENTORY_PORT";;
    inventory)
      echo "APP_DATABASE__URL=mysql://glasshouse:glasshouse@127.0.0.1:$GH_MARIADB_PORT/inventory";;
    notification)
      echo "APP_DATABASE__URL=mongodb://127.0.0.1:$GH_FERRETDB_PORT/";;
  esac
}

start() { # start NAME
  local name=$1 port; port=$(port_of "$name")
  if running "$name"; then return; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then say "port $port for $name is taken by another process"; exit 1; fi
  [[ -f "$H/logs/$name.log" ]] && mv -f "$H/logs/$name.log" "$H/logs/$name.log.1"
  # GH_SERVICES_ENV: extra KEY=VALUE settings for every service (make bench's telemetry variants).
  env $(service_env "$name") ${GH_SERVICES_ENV:-} setsid "$BIN/glasshouse-$name" >"$H/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

wait_ready() { # wait_ready NAME
  local name=$1 port deadline=$((SECONDS + 90)); port=$(port_of "$name")
  until curl -fs -o /dev/null "http://127.0.0.1:$port/health/ready"; do
    if ! running "$name"; then say "FAILED: $name exited; its log: $H/logs/$name.log"; tail -n 20 "$H/logs/$name.log" >&2; exit 1; fi
    if (( SECONDS > deadline )); then say "FAILED: $name not ready in 90s; its log: $H/logs/$name.log"; tail -n 20 "$H/logs/$name.log" >&2; exit 1; fi
    sleep 0.3
  done
}

register() { # register NAME: Prometheus scrapes it as job glasshouse with a service label
  local name=$1 dir="$H/etc/prometheus/targets/glasshouse"
  mkdir -p "$dir"
  printf '[{"targets":["127.0.0.1:%s"],"labels":{"service":"%s"}}]\n' "$(port_of "$name")" "$name" >"$dir/.$name.tmp"
  mv "$dir/.$name.tmp" "$dir/$name.json"
}

cmd_up() {
  build
  "$BIN/glasshouse-dev-token" init --dir "$JWT" >/dev/null
  # Where each service's fault flag file goes (services/platform/src/faults.rs; README.md).
  for s in "${SERVICES[@]}"; do mkdir -p "$H/etc/$s"; done
  for s in "${SERVICES[@]}"; do start "$s"; done
  for s in "${SERVICES[@]}"; do wait_ready "$s"; register "$s"; done
  say "services up: order :$GH_ORDER_PORT, inventory :$GH_INVENTORY_PORT, notification :$GH_NOTIFICATION_PORT"
}

cmd_down() {
  local s
  for s in "${SERVICES[@]}"; do
    rm -f "$H/etc/prometheus/targets/glasshouse/$s.json"
    if running "$s"; then kill -TERM "$(cat "$(pidfile "$s")")"; fi
  done
  local deadline=$((SECONDS + 30))
  for s in "${SERVICES[@]}"; do
    while running "$s" && (( SECONDS < deadline )); do sleep 0.2; done
    if running "$s"; then say "$s did not stop in 30s; killing it"; kill -KILL "$(cat "$(pidfile "$s")")" || true; fi
    rm -f "$(pidfile "$s")"
  done
}

cmd_status() {
  local s
  for s in "${SERVICES[@]}"; do
    local state=stopped
    if running "$s"; then state=running; curl -fs -o /dev/null "http://127.0.0.1:$(port_of "$s")/health/ready" && state=ready; fi
    printf '%-13s %-8s :%s  %s\n' "$s" "$state" "$(port_of "$s")" "$H/logs/$s.log"
  done
}

cmd_token() {
  [[ $# -ge 1 ]] || { say "usage: services.sh token SUB [customer|admin]"; exit 2; }
  "$BIN/glasshouse-dev-token" mint --dir "$JWT" --sub "$1" --role "${2:-customer}" --ttl 7200
}

case ${1:-} in
  up) cmd_up;; down) cmd_down;; status) cmd_status;; token) shift; cmd_token "$@";;
  *) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2;;
esac
