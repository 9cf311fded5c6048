#!/usr/bin/env bash
# The local trace UI, started by deploy/local/stack as one component (one process
# group): the OTLP-to-Zipkin bridge in the background, then the Zipkin server in
# the foreground (it keeps the pid the stack recorded).
#   run.sh BRIDGE_BINARY BRIDGE_CONFIG ZIPKIN_LIBS_DIR
# Ports: GH_ZIPKIN_PORT (UI + API), GH_ZIPKIN_BRIDGE_PORT (OTLP/HTTP from Jaeger).
set -euo pipefail
bridge=$1 config=$2 libs=$3
jar=$(ls "$libs"/zipkin-server-*-exec.jar)
"$bridge" --config="$config" &
# In-memory storage, bounded; a small heap; loopback only. Self-tracing and the
# other collectors (Kafka, RabbitMQ, Scribe, gRPC) stay off (they are by default).
# The bound must fit the heap with room to spare, whatever the spans hold: a
# stored span of the order flow holds ~2.9 KB of it (measured: 61 440 spans, 200 MB
# live after a full GC, 20 MB of that the empty server), but the spans of `make test`
# are larger (schemathesis' long paths and bodies): with 40 000 spans the heap filled
# within minutes of `make test` (443 full GCs, "Java heap space"). 100 000 needed
# ~310 MB of the 256 even for order-flow spans: every request ran a full GC, a core
# busy with no load (docs/performance.md, "Cost per saga"). 10 000 spans (~250
# sagas, the demo's last minute at 5 visitors/s) leave headroom for 4x larger spans.
# The heap is 384 MB, not 256: ingesting the bench's max rate (~4 500 spans/s) needs
# room beyond the stored spans, and at 256 MB it ran out during `make bench`; after that
# OutOfMemoryError Zipkin went on answering 202 but stored nothing more (seen
# 2026-12-01: the demo's traces were missing). So an OutOfMemoryError now ends the
# process (`stack status` shows it stopped, `stack up` starts it) instead of leaving
# a trace UI that silently drops every span.
export STORAGE_TYPE=mem MEM_MAX_SPANS=${GH_ZIPKIN_MAX_SPANS:-10000}
exec java -Xms32m -Xmx384m -XX:+ExitOnOutOfMemoryError -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -Djava.awt.headless=true \
  -jar "$jar" --armeria.ports[0].ip=127.0.0.1 --armeria.ports[0].port="$GH_ZIPKIN_PORT" \
  --logging.level.root=WARN --logging.level.com.linecorp.armeria.server.Server=INFO
