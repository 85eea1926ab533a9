#!/usr/bin/env bash
# ArcadeDB (a Bolt server, "Neo4j/5.26.0 compatible") for aquifer-neo4j's tests and example.
#   Bolt on 127.0.0.1:$AQUIFER_BOLT_PORT, HTTP on 127.0.0.1:$AQUIFER_ARCADEDB_HTTP_PORT, user root, password `aquifer-secret`, database `testdb`.
# Also a user `aq_neo4j_pw` (password `aquifer-secret`) for wrong-password tests: ArcadeDB locks a user out for
# 30 s after 5 failed logins, so those tests must never use root.
# Installed from PyPI (arcadedb-embedded bundles its own JRE and jars) into $AQUIFER_SERVICES_DIR/arcadedb/pkg,
# data in $AQUIFER_SERVICES_DIR/arcadedb/root, log in .../server.log, PID in .../server.pid.
# Idempotent: a server that already answers is left alone.
#
# Tests that stop and restart a server (the behaviour suite's restart drill, crates/aquifer-neo4j/tests/suite.rs) start their own instance from
# the same package on other ports, so they never disturb this one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=26.10.2.post1
dir=$AQUIFER_SERVICES_DIR/arcadedb
password=aquifer-secret
bolt_port=$AQUIFER_BOLT_PORT
http_port=$AQUIFER_ARCADEDB_HTTP_PORT
pkg=$dir/pkg/arcadedb_embedded
mkdir -p "$dir"

# ensure_user NAME: creates a server user with the test password and access to testdb, once.
ensure_user() {
  local out
  out=$(curl -s -m 10 -u "root:$password" -X POST "http://127.0.0.1:$http_port/api/v1/server" \
    -d "{\"command\":\"create user {\\\"name\\\":\\\"$1\\\",\\\"password\\\":\\\"$password\\\",\\\"databases\\\":{\\\"testdb\\\":\\\"admin\\\"}}\"}")
  case "$out" in
    *'"result":"ok"'* | *"already exists"*) ;;
    *) log "could not create ArcadeDB user $1: $out"; return 1 ;;
  esac
}

ready() { curl -sf -m 2 -u "root:$password" "http://127.0.0.1:$http_port/api/v1/ready" >/dev/null 2>&1; }

if pid_of "$dir" >/dev/null && ready && port_open 127.0.0.1 "$bolt_port"; then
  ensure_user aq_neo4j_pw
  log "ArcadeDB already running on 127.0.0.1:$bolt_port"
  exit 0
fi

command -v curl >/dev/null || apt_install curl
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip

if [ ! -x "$pkg/jre/bin/java" ] || [ "$(cat "$dir/pkg/.version" 2>/dev/null)" != "$version" ]; then
  log "installing arcadedb-embedded $version from PyPI into $dir/pkg"
  rm -rf "$dir/pkg"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --target "$dir/pkg" "arcadedb-embedded==$version"
  echo "$version" >"$dir/pkg/.version"
fi

# A process of ours that is not ready (still starting, or started with other ports): waited for, or stopped.
if old=$(pid_of "$dir"); then
  log "waiting for the ArcadeDB already started (pid $old)"
  for _ in $(seq 1 300); do ready && port_open 127.0.0.1 "$bolt_port" && break; kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
  if ready && port_open 127.0.0.1 "$bolt_port"; then
    ensure_user aq_neo4j_pw
    log "ArcadeDB ready on 127.0.0.1:$bolt_port"
    exit 0
  fi
  stop_pid "$dir"
fi

if port_open 127.0.0.1 "$bolt_port" || port_open 127.0.0.1 "$http_port"; then
  log "port $bolt_port or $http_port is taken by something that is not our ArcadeDB; set AQUIFER_BOLT_PORT or AQUIFER_ARCADEDB_HTTP_PORT (scripts/services/ports.env)"
  exit 1
fi

log "starting ArcadeDB $version (Bolt 127.0.0.1:$bolt_port, HTTP 127.0.0.1:$http_port)"
# setsid: the server outlives this script and the CI step that ran it. It writes ./log/ under its working
# directory, so it runs from $dir.
cd "$dir"
setsid "$pkg/jre/bin/java" -Xms256m -Xmx1g \
  -Darcadedb.server.rootPath="$dir/root" \
  -Darcadedb.server.databaseDirectory="$dir/root/databases" \
  -Darcadedb.server.rootPassword="$password" \
  -Darcadedb.server.httpIncomingHost=127.0.0.1 -Darcadedb.server.httpIncomingPort="$http_port" \
  -Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin \
  -Darcadedb.bolt.host=127.0.0.1 -Darcadedb.bolt.port="$bolt_port" \
  -Darcadedb.server.defaultDatabases='testdb[root]' \
  -cp "$pkg/jars/*" com.arcadedb.server.ArcadeDBServer >"$dir/server.log" 2>&1 </dev/null &
echo $! >"$dir/server.pid"

for _ in $(seq 1 300); do # 60 s
  if pid_of "$dir" >/dev/null && ready && port_open 127.0.0.1 "$bolt_port"; then
    ensure_user aq_neo4j_pw
    log "ArcadeDB ready on 127.0.0.1:$bolt_port (pid $(cat "$dir/server.pid"))"
    exit 0
  fi
  kill -0 "$(cat "$dir/server.pid")" 2>/dev/null || break
  sleep 0.2
done
log "ArcadeDB did not become ready; last lines of $dir/server.log:"
tail -n 30 "$dir/server.log" >&2 || true
exit 1
