#!/usr/bin/env bash
# Prometheus 3, for checking the dashboards' PromQL with Prometheus's own engine: it scrapes VictoriaMetrics'
# /federate (every aquifer series: db_client_*, aquifer_*) every second and answers the same queries at
# http://127.0.0.1:$AQUIFER_PROMETHEUS_PORT/api/v1/query (tests/dashboards.rs runs every panel query against both).
# Needs VictoriaMetrics (50-victoriametrics.sh) to have data, not to start.
#
# Debian 12 ships Prometheus 2.42; the unstable suite's `prometheus` is 3.x and runs here. Fetched like
# victoria-metrics (sid_unpack in lib.sh: `apt-get download` from the unstable suite, unpacked with `dpkg -x`, the
# system's apt state untouched). Data in $AQUIFER_SERVICES_DIR/prometheus/data, log in .../server.log, PID in .../server.pid. Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=$AQUIFER_SERVICES_DIR/prometheus
port=$AQUIFER_PROMETHEUS_PORT
victoria=127.0.0.1:$AQUIFER_VICTORIA_PORT
bin=$dir/pkg/usr/bin/prometheus
mkdir -p "$dir"

ready() { curl -sf -m 2 "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; }

command -v curl >/dev/null || apt_install curl

if [ ! -x "$bin" ]; then
  sid_unpack prometheus "$dir/pkg"
  [ -x "$bin" ] || { log "the prometheus package holds no $bin"; exit 1; }
fi

# honor_timestamps: false: every scrape is a sample at scrape time, so that rate() has the two samples it needs
# even for series that an example exported once, at its exit.
cat >"$dir/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: victoria-federate
    honor_labels: true
    honor_timestamps: false
    metrics_path: /federate
    params:
      'match[]': ['{__name__=~"db_client_.+|aquifer_.+"}']
    static_configs:
      - targets: ['$victoria']
YAML

# Ours, ready and scraping the VictoriaMetrics of this configuration: left alone. Not ready (still starting):
# waited for. Scraping another one (the ports changed): restarted.
if pid_of "$dir" >/dev/null; then
  if cmp -s "$dir/prometheus.yml" "$dir/prometheus.yml.running"; then
    for _ in $(seq 1 50); do ready && { log "Prometheus ready on 127.0.0.1:$port"; exit 0; }; sleep 0.2; done
  fi
  stop_pid "$dir"
fi

if port_open 127.0.0.1 "$port"; then
  log "port $port is taken by something that is not our Prometheus; set AQUIFER_PROMETHEUS_PORT (scripts/services/ports.env)"
  exit 1
fi

log "starting Prometheus on 127.0.0.1:$port"
# setsid: the server outlives this script and the CI step that ran it.
setsid "$bin" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$port" --log.level=warn \
  >"$dir/server.log" 2>&1 </dev/null &
echo $! >"$dir/server.pid"
cp "$dir/prometheus.yml" "$dir/prometheus.yml.running"

for _ in $(seq 1 100); do # 20 s
  if ready; then
    log "Prometheus ready on 127.0.0.1:$port (pid $(cat "$dir/server.pid"))"
    exit 0
  fi
  kill -0 "$(cat "$dir/server.pid")" 2>/dev/null || break
  sleep 0.2
done
log "Prometheus did not become ready; last lines of $dir/server.log:"
tail -n 30 "$dir/server.log" >&2 || true
exit 1
