#!/usr/bin/env bash
# `make demo`: the stack is up (make ran `stack up` first); say what runs where.
# The three services, the demo catalog and a short order load join this script
# as they are built (see the open issues).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
set -a; source "$HERE/ports.env"; set +a
"$HERE/stack" status
cat <<TXT

Glasshouse local stack is up (everything on 127.0.0.1):
  PostgreSQL      postgres://glasshouse:glasshouse@127.0.0.1:$GH_POSTGRES_PORT/orders
  MariaDB         mysql://glasshouse:glasshouse@127.0.0.1:$GH_MARIADB_PORT/inventory
  FerretDB        mongodb://127.0.0.1:$GH_FERRETDB_PORT/
  Kafka           127.0.0.1:$GH_KAFKA_PORT
  Jaeger          OTLP grpc 127.0.0.1:$GH_JAEGER_OTLP_GRPC_PORT, http 127.0.0.1:$GH_JAEGER_OTLP_HTTP_PORT
                  query API http://127.0.0.1:$GH_JAEGER_QUERY_PORT/api/services
  Prometheus      http://127.0.0.1:$GH_PROMETHEUS_PORT/api/v1/targets
  Alertmanager    http://127.0.0.1:$GH_ALERTMANAGER_PORT/api/v2/alerts
  VictoriaLogs    Loki push http://127.0.0.1:$GH_VICTORIALOGS_PORT/insert/loki/api/v1/push
                  query: curl http://127.0.0.1:$GH_VICTORIALOGS_PORT/select/logsql/query -d 'query=service:order'
  OpenSearch      http://127.0.0.1:$GH_OPENSEARCH_PORT/_cat/indices

Logs of each component: deploy/local/stack logs NAME      Stop: make down
TXT
