#!/usr/bin/env bash
# `make demo`: the stack is up (make ran `stack up` first). This starts the
# three services, loads the demo catalog, drives the order flow with the load
# runner for a short while, and says where to look.
#   GH_DEMO_DURATION (default 60s) and GH_DEMO_RATE (default 5/s) tune the load.
#   demo.sh links TRACE_ID   only prints the pages the demo points at, "name url" a
#                            line (tests/tests/demo_links.rs opens each in Chromium).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
set -a; source "$HERE/ports.env"; set +a

# Every web page the demo prints, for one trace: each opens a real page (UI), not an API.
links() { # links TRACE_ID
  local t=$1
  echo "trace http://127.0.0.1:$GH_ZIPKIN_PORT/zipkin/traces/$t"
  echo "graph http://127.0.0.1:$GH_PROMETHEUS_PORT/graph?g0.expr=sum%20by%20(status)%20(orders_total)&g0.tab=0&g0.range_input=15m"
  echo "alerts http://127.0.0.1:$GH_PROMETHEUS_PORT/classic/alerts"
  echo "alertmanager http://127.0.0.1:$GH_ALERTMANAGER_PORT/#/alerts"
  echo "logs http://127.0.0.1:$GH_VICTORIALOGS_PORT/select/vmui/#/?query=trace_id%3A%3D%22$t%22&g0.range_input=1h&g0.relative_time=last_1_hour"
}
if [[ ${1:-} == links ]]; then
  [[ ${2:-} =~ ^[0-9a-f]{32}$ ]] || { echo "usage: demo.sh links TRACE_ID (32 hex digits), not '${2:-}'" >&2; exit 2; }
  links "$2"; exit 0
fi

H="$("$HERE/stack" home)"
BIN="$REPO/target/release"

"$HERE/services.sh" up

echo "loading the demo catalog..."
# --reset-stock brings demo stock back to the seed's values by recorded deltas
# (count_correction rows on the stock ledger), never by overwriting it.
APP_DATABASE__URL="mysql://glasshouse:glasshouse@127.0.0.1:$GH_MARIADB_PORT/inventory" "$BIN/glasshouse-inventory-seed" --reset-stock

# One token per simulated customer.
tokens=""
for i in $(seq -w 1 20); do tokens+="$("$HERE/services.sh" token "demo-customer-$i") "; done
export GLASSHOUSE_LOADTEST_TOKEN="$tokens"

out="$H/loadtest/demo-$(date -u +%Y%m%dT%H%M%SZ)"
echo "driving the order flow for ${GH_DEMO_DURATION:-60s} at ${GH_DEMO_RATE:-5}/s..."
set +e
"$BIN/glasshouse-loadtest" run --config "$REPO/loadtest/scenarios/order-flow.yaml" \
  --duration "${GH_DEMO_DURATION:-60s}" --rate "${GH_DEMO_RATE:-5}" --out "$out" --quiet \
  --target "order=http://127.0.0.1:$GH_ORDER_PORT" --target "inventory=http://127.0.0.1:$GH_INVENTORY_PORT" \
  --target "notification=http://127.0.0.1:$GH_NOTIFICATION_PORT" --metrics-port "$GH_LOADTEST_METRICS_PORT"
load_rc=$?
set -e
case $load_rc in
  0) verdict="every threshold passed";;
  1) verdict="some thresholds were breached (see the report)";;
  *) echo "the load runner failed (exit $load_rc)"; exit "$load_rc";;
esac

slow_trace=$(python3 - "$out/summary.json" <<'PY' 2>/dev/null || true
import json, sys
s = json.load(open(sys.argv[1]))
slow = s.get("slowest") or []
print(slow[0].get("trace_id", "") if slow else "")
PY
)

"$HERE/stack" status
"$HERE/services.sh" status
# The slowest request's pages (an all-zero id, an empty trace page, when the run recorded none).
declare -A page
while read -r name url; do page[$name]=$url; done < <(links "${slow_trace:-00000000000000000000000000000000}")
cat <<TXT

Glasshouse demo: the order flow ran ($verdict).
  Load report      $out/report.html   (summary: $out/summary.json)
  Slowest trace    ${page[trace]}
                   (Zipkin's UI, fed by Jaeger; each slow request in the report links its own trace.
                   Jaeger's query API: http://127.0.0.1:$GH_JAEGER_QUERY_PORT/api/traces/${slow_trace:-<trace id>})
  Its log lines    ${page[logs]}
                   (VictoriaLogs' UI, LogsQL; the ES API: curl 'http://127.0.0.1:$GH_OPENSEARCH_PORT/glasshouse-logs-*/_search?q=trace.id:${slow_trace:-<trace id>}')
  Services         order http://127.0.0.1:$GH_ORDER_PORT/docs   inventory http://127.0.0.1:$GH_INVENTORY_PORT/docs
                   notification http://127.0.0.1:$GH_NOTIFICATION_PORT/docs   (each: /metrics, /health/ready, /openapi.yaml)
  Prometheus       ${page[graph]}
  Alerts           ${page[alerts]}   (every alert rule and its state)
                   Alertmanager: ${page[alertmanager]}
  Dashboards       cargo run -p glasshouse-dashboards -- check --require-data   (every panel's query, against this Prometheus)
  A token          deploy/local/services.sh token demo-customer-01

Stop: make down (services and stack).   Service logs: $H/logs/{order,inventory,notification}.log
TXT
