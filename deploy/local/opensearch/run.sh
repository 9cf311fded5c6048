#!/usr/bin/env bash
# Run the local OpenSearch node in the foreground (exec: the java process keeps this script's pid).
#
#   deploy/local/opensearch/run.sh OUT_DIR STATE_DIR [HTTP_PORT] [LAUNCHER OPTIONS ...]
#
#   LAUNCHER OPTIONS are passed to glasshouse.LocalOpenSearch as they are, e.g. -Ekey=value,
#   --default-replicas none, --plugins org.opensearch.transport.Netty4Plugin (see --help).
#   OUT_DIR    what build.sh produced (lib/, classes/, config/)
#   STATE_DIR  path.home; data in STATE_DIR/data, logs in STATE_DIR/logs unless
#              OPENSEARCH_DATA / OPENSEARCH_LOGS say otherwise
#   HTTP_PORT  default 9200 (transport: OPENSEARCH_TRANSPORT_PORT, default 9300)
# Environment: OPENSEARCH_HEAP (default 512m), OPENSEARCH_JAVA_OPTS (extra JVM flags), JAVA (default java).
# Ready when: curl -s 'http://127.0.0.1:9200/_cluster/health?wait_for_status=yellow&timeout=60s'
# Stop with SIGTERM; the node closes and the process exits (status 143, the JVM's usual one for SIGTERM).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 OUT_DIR STATE_DIR [HTTP_PORT] [-Ekey=value | --default-replicas N|none | --plugins a.B,c.D ...]" >&2
  exit 2
fi
out="$(cd "$1" && pwd)"
state="$2"
shift 2
http_port=9200
if [[ $# -gt 0 && "$1" != -* ]]; then
  http_port="$1"
  shift
fi
mkdir -p "$state"
state="$(cd "$state" && pwd)"
data="${OPENSEARCH_DATA:-$state/data}"
logs="${OPENSEARCH_LOGS:-$state/logs}"
tmp="$state/tmp"
mkdir -p "$data" "$logs" "$tmp"

if [[ ! -f "$out/classes/glasshouse/LocalOpenSearch.class" ]]; then
  echo "run.sh: $out is not built; run build.sh $out first" >&2
  exit 1
fi

heap="${OPENSEARCH_HEAP:-512m}"
# shellcheck disable=SC2206
extra_opts=(${OPENSEARCH_JAVA_OPTS:-})

exec "${JAVA:-java}" \
  -Xms"$heap" -Xmx"$heap" \
  -XX:+UseG1GC \
  -XX:+ExitOnOutOfMemoryError \
  -Xss1m \
  -Djava.io.tmpdir="$tmp" \
  -Djava.awt.headless=true \
  -Dfile.encoding=UTF-8 \
  -Djna.nosys=true \
  -Dio.netty.noUnsafe=true \
  -Dio.netty.noKeySetOptimization=true \
  -Dio.netty.recycler.maxCapacityPerThread=0 \
  -Dlog4j.shutdownHookEnabled=false \
  -Dlog4j2.disable.jmx=true \
  -Dopensearch.set.netty.runtime.available.processors=false \
  ${extra_opts[@]+"${extra_opts[@]}"} \
  -cp "$out/classes:$out/lib/*" \
  glasshouse.LocalOpenSearch \
  --home "$state" --data "$data" --logs "$logs" --config "$out/config" \
  --http-port "$http_port" --transport-port "${OPENSEARCH_TRANSPORT_PORT:-9300}" \
  "$@"
