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
# The bound must fit the heap: a stored span of the order flow holds ~2.9 KB of it
# (measured: 61 440 spans, 200 MB live after a full GC, 20 MB of that the empty
# server). 100 000 spans needed ~310 MB of the 256: the heap filled, every request
# ran a full GC (a core busy with no load at all) and Zipkin answered
# "Java heap space" (docs/performance.md, "Cost per saga"). 40 000 spans: ~135 MB.
export STORAGE_TYPE=mem MEM_MAX_SPANS=${GH_ZIPKIN_MAX_SPANS:-40000}
exec java -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -Djava.awt.headless=true \
  -jar "$jar" --armeria.ports[0].ip=127.0.0.1 --armeria.ports[0].port="$GH_ZIPKIN_PORT" \
  --logging.level.root=WARN --logging.level.com.linecorp.armeria.server.Server=INFO
