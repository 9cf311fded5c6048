#!/usr/bin/env bash
# `make demo`: the stack is up (make ran `stack up` first). This starts the
# three services, loads the demo catalog, drives the order flow with the load
# runner for a short while, and says where to look.
#   GH_DEMO_DURATION (default 60s) and GH_DEMO_RATE (default 5/s) tune the load.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
set -a; source "$HERE/ports.env"; set +a
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
cat <<TXT

Glasshouse demo: the order flow ran ($verdict).
  Load report      $out/report.html   (summary: $out/summary.json)
  One order's trace http://127.0.0.1:$GH_JAEGER_QUERY_PORT/api/traces/${slow_trace:-<trace id from the report>}
                   (Jaeger's query API; every request of the run is listed with its trace id in the report)
  Services         order http://127.0.0.1:$GH_ORDER_PORT/docs   inventory http://127.0.0.1:$GH_INVENTORY_PORT/docs
                   notification http://127.0.0.1:$GH_NOTIFICATION_PORT/docs   (each: /metrics, /health/ready, /openapi.yaml)
  Prometheus       http://127.0.0.1:$GH_PROMETHEUS_PORT/api/v1/query?query=sum+by+(status)+(orders_total)
                   alerts: http://127.0.0.1:$GH_PROMETHEUS_PORT/api/v1/alerts   Alertmanager: http://127.0.0.1:$GH_ALERTMANAGER_PORT/api/v2/alerts
  Dashboards       cargo run -p glasshouse-dashboards -- check --require-data   (every panel's query, against this Prometheus)
  Logs (Loki API)  curl http://127.0.0.1:$GH_VICTORIALOGS_PORT/select/logsql/query -d 'query=service:order AND trace_id:="${slow_trace:-<trace id>}"'
  Logs (ES API)    curl 'http://127.0.0.1:$GH_OPENSEARCH_PORT/glasshouse-logs-*/_search?q=trace.id:${slow_trace:-<trace id>}'
  A token          deploy/local/services.sh token demo-customer-01

Stop: make down (services and stack).   Service logs: $H/logs/{order,inventory,notification}.log
TXT
