#!/usr/bin/env bash
# A replicated PostgreSQL 15 cluster of the project's own, for the `replicas` example and benchmarks by hand:
# a primary and two streaming replicas (pg_basebackup -R over physical replication slots), each with its own
# data directory under $AQUIFER_SERVICES_DIR/pg-replicas/ and its own port on 127.0.0.1, trust auth, superuser
# `postgres`, database `test`. The same cluster as the tests' aquifer_testing::PrivatePgCluster, on fixed ports.
# Idempotent: nodes that run are left alone. The system servers (5432) are never touched.
#
#   bash scripts/pg-replicas.sh start     # create if needed, start all three
#   bash scripts/pg-replicas.sh stop      # stop all three (pg_ctl stop -m fast)
#   bash scripts/pg-replicas.sh status    # which node runs, its role
#   bash scripts/pg-replicas.sh env       # export line: eval "$(bash scripts/pg-replicas.sh env)"
#   bash scripts/pg-replicas.sh destroy   # stop and remove the data directories
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/services/lib.sh
source "$here/services/lib.sh"

# The ports, overridable from the environment, in the style of scripts/services/ports.env (clear of the standard
# ports and of the ephemeral range the tests' private servers use).
: "${AQUIFER_PG_PRIMARY_PORT:=15442}"  # node0, the primary at creation
: "${AQUIFER_PG_REPLICA1_PORT:=15443}" # node1, a streaming replica (slot replica_1)
: "${AQUIFER_PG_REPLICA2_PORT:=15444}" # node2, a streaming replica (slot replica_2)
ports=("$AQUIFER_PG_PRIMARY_PORT" "$AQUIFER_PG_REPLICA1_PORT" "$AQUIFER_PG_REPLICA2_PORT")

dir=$AQUIFER_SERVICES_DIR/pg-replicas
bin=/usr/lib/postgresql/15/bin
user=postgres
[ "$(id -u)" = 0 ] || user=$(id -un)

sql() { psql -h 127.0.0.1 -p "$1" -U postgres -X -qAt -d postgres -c "$2"; }
answers() { sql "$1" "select 1" >/dev/null 2>&1; }
ctl() { as_user "$user" "$bin/pg_ctl" "$@"; }

start_node() {
  local n=$1
  if answers "${ports[$n]}"; then return 0; fi
  log "starting node$n on 127.0.0.1:${ports[$n]}"
  ctl -D "$dir/node$n" -l "$dir/node$n.log" -w -t 60 start >/dev/null
}

create() {
  [ -x "$bin/initdb" ] || { log "PostgreSQL 15 is missing: run scripts/dev-services.sh postgres first"; exit 1; }
  mkdir -p "$dir"
  own "$dir" "$user"
  if [ ! -s "$dir/node0/PG_VERSION" ]; then
    log "initialising the primary in $dir/node0"
    as_user "$user" "$bin/initdb" -D "$dir/node0" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1
    cat >>"$dir/node0/postgresql.conf" <<EOF
# aquifer replicas cluster
listen_addresses = '127.0.0.1'
port = ${ports[0]}
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
max_connections = 200
EOF
    start_node 0
    sql "${ports[0]}" "CREATE DATABASE test"
  fi
  start_node 0
  for n in 1 2; do
    if [ ! -s "$dir/node$n/PG_VERSION" ]; then
      log "cloning node$n from the primary (pg_basebackup, slot replica_$n)"
      sql "${ports[0]}" "SELECT pg_create_physical_replication_slot('replica_$n') WHERE NOT EXISTS
        (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'replica_$n')" >/dev/null
      as_user "$user" "$bin/pg_basebackup" -h 127.0.0.1 -p "${ports[0]}" -U postgres -D "$dir/node$n" \
        -R -X stream -c fast -S "replica_$n" --no-sync
      echo "port = ${ports[$n]}" >>"$dir/node$n/postgresql.conf"
    fi
    start_node "$n"
  done
}

case "${1:-start}" in
  start)
    create
    "$0" status
    ;;
  stop)
    for n in 2 1 0; do
      if [ -s "$dir/node$n/postmaster.pid" ]; then ctl -D "$dir/node$n" -m fast -w stop >/dev/null || true; fi
    done
    ;;
  destroy)
    "$0" stop
    rm -rf "$dir"
    ;;
  status)
    for n in 0 1 2; do
      if answers "${ports[$n]}"; then
        role=$(sql "${ports[$n]}" "SELECT CASE WHEN pg_is_in_recovery() THEN 'replica' ELSE 'primary' END")
        echo "node$n 127.0.0.1:${ports[$n]} $role"
      else
        echo "node$n 127.0.0.1:${ports[$n]} down"
      fi
    done
    ;;
  env)
    echo "export POSTGRES_CLUSTER_URL='postgres://postgres@127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}/test?sslmode=disable'"
    ;;
  *)
    echo "usage: $0 start|stop|status|env|destroy" >&2
    exit 2
    ;;
esac
