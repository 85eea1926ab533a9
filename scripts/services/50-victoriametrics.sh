#!/usr/bin/env bash
# VictoriaMetrics, the OTLP receiver of aquifer-otel's end-to-end and dashboard tests: it ingests OTLP
# (HTTP/protobuf) at http://127.0.0.1:$AQUIFER_VICTORIA_PORT/opentelemetry/v1/metrics and answers PromQL at /api/v1/query.
# `-opentelemetry.usePrometheusNaming` stores metrics under the names Prometheus 3 gives the same OTLP data
# (db_client_connection_wait_time_seconds_bucket, db_client_connection_timeouts_total).
#
# Debian 12 ships 1.79, which predates OTLP; the unstable suite's `victoria-metrics` is a static binary that runs
# here. It is fetched with `apt-get download` from the unstable suite of the machine's own Debian mirror and
# unpacked with `dpkg -x` (sid_unpack in lib.sh: a private sources list and package cache, the system's apt state
# untouched). Data in .../data, log in .../server.log, PID in .../server.pid.
# The same package holds vmalert and vmalert-tool, kept in .../pkg/usr/bin beside the server: the alert rules'
# unit tests (scripts/check-alerts.sh) run vmalert-tool, and tests/alerts.rs runs vmalert against this server.
# `--unpack-only` unpacks the package (unless every one of the three is there) and starts nothing.
# Idempotent: a VictoriaMetrics that already answers is left alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=$AQUIFER_SERVICES_DIR/victoriametrics
port=$AQUIFER_VICTORIA_PORT
bin=$dir/pkg/usr/bin/victoria-metrics
mkdir -p "$dir"

ready() { curl -sf -m 2 "http://127.0.0.1:$port/health" 2>/dev/null | grep -q OK; }

command -v curl >/dev/null || apt_install curl

binaries=("$bin" "$dir/pkg/usr/bin/vmalert" "$dir/pkg/usr/bin/vmalert-tool")
unpacked() { for b in "${binaries[@]}"; do [ -x "$b" ] || return 1; done; }
if ! unpacked; then
  sid_unpack victoria-metrics "$dir/pkg"
  unpacked || { log "the victoria-metrics package lacks one of ${binaries[*]}"; exit 1; }
fi
[ "${1:-}" = --unpack-only ] && exit 0

if pid_of "$dir" >/dev/null && ready; then
  log "VictoriaMetrics already running on 127.0.0.1:$port"
  exit 0
fi

# A process of ours that is not ready (still starting, or started on another port): waited for, or stopped.
if old=$(pid_of "$dir"); then
  for _ in $(seq 1 50); do ready && { log "VictoriaMetrics ready on 127.0.0.1:$port"; exit 0; }; sleep 0.2; done
  stop_pid "$dir"
fi

if port_open 127.0.0.1 "$port"; then
  log "port $port is taken by something that is not our VictoriaMetrics; set AQUIFER_VICTORIA_PORT (scripts/services/ports.env)"
  exit 1
fi

log "starting VictoriaMetrics on 127.0.0.1:$port"
# setsid: the server outlives this script and the CI step that ran it.
# -search.latencyOffset=0: samples are queryable as soon as they are ingested (the default hides the last 30 s,
# which would make every end-to-end test wait that long).
setsid "$bin" -storageDataPath="$dir/data" -httpListenAddr="127.0.0.1:$port" \
  -opentelemetry.usePrometheusNaming -search.latencyOffset=0 -search.disableCache \
  -retentionPeriod=1d -loggerLevel=WARN >"$dir/server.log" 2>&1 </dev/null &
echo $! >"$dir/server.pid"

for _ in $(seq 1 100); do # 20 s
  if ready; then
    log "VictoriaMetrics ready on 127.0.0.1:$port (pid $(cat "$dir/server.pid"))"
    exit 0
  fi
  kill -0 "$(cat "$dir/server.pid")" 2>/dev/null || break
  sleep 0.2
done
log "VictoriaMetrics did not become ready; last lines of $dir/server.log:"
tail -n 30 "$dir/server.log" >&2 || true
exit 1
