#!/usr/bin/env bash
# A MariaDB primary and a GTID replica of it, for the examples and benchmarks by hand (the tests start their
# own, aquifer_testing::PrivateMariaDbCluster, with the same settings; scripts/pg-replicas.sh is the PostgreSQL
# counterpart). Project-owned servers like those of scripts/dev-services.sh: data in
# $AQUIFER_SERVICES_DIR/mariadb-replicas/primary and .../replica, on 127.0.0.1 only, the system servers
# (3306) untouched.
#
#   bash scripts/mariadb-replicas.sh start   # start both (idempotent), the replica replicating from the primary
#   bash scripts/mariadb-replicas.sh stop    # stop both (by their PID files)
#   bash scripts/mariadb-replicas.sh status  # what runs, and the replica's state
#   bash scripts/mariadb-replicas.sh env     # export lines: eval "$(bash scripts/mariadb-replicas.sh env)"
#   bash scripts/mariadb-replicas.sh destroy # stop both and remove their data directories
#
# Ports: $AQUIFER_MARIADB_PRIMARY_PORT (default 13316) and $AQUIFER_MARIADB_REPLICA_PORT (13317). Users: root
# without a password, and `aquifer`@127.0.0.1 without a password (all on test.*, BINLOG MONITOR, SLAVE
# MONITOR; no READ_ONLY ADMIN, so the replica's read_only=1 refuses its writes).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/services/lib.sh
source "$here/services/lib.sh"

: "${AQUIFER_MARIADB_PRIMARY_PORT:=13316}"
: "${AQUIFER_MARIADB_REPLICA_PORT:=13317}"
primary_dir=$AQUIFER_SERVICES_DIR/mariadb-replicas/primary
replica_dir=$AQUIFER_SERVICES_DIR/mariadb-replicas/replica
user=()
[ "$(id -u)" = 0 ] && user=(--user=mysql) # mariadbd drops root's privileges itself

sql() { mariadb --no-defaults -uroot --socket="$1/run/mysqld.sock" --batch --skip-column-names -e "$2"; }

# start_server DIR PORT OPTION...: initialises DIR if needed and starts mariadbd there unless it runs.
start_server() {
  local dir=$1 port=$2
  shift 2
  mariadb_init "$dir"
  if pid_of "$dir" >/dev/null; then return 0; fi
  if port_open 127.0.0.1 "$port"; then
    log "port $port is taken by something that is not our MariaDB; set another port (see the top of $0)"
    exit 1
  fi
  log "starting MariaDB on 127.0.0.1:$port ($dir)"
  rm -f "$dir/server.pid"
  setsid /usr/sbin/mariadbd --no-defaults "${user[@]}" --datadir="$dir/data" --bind-address=127.0.0.1 \
    --port="$port" --socket="$dir/run/mysqld.sock" --pid-file="$dir/server.pid" --skip-name-resolve \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --max-connections=151 \
    --log-bin=mariadb-bin --binlog-format=ROW --log-slave-updates "$@" \
    --log-error="$dir/error.log" >/dev/null 2>&1 </dev/null &
  for _ in $(seq 1 300); do pid_of "$dir" >/dev/null && sql "$dir" "select 1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "MariaDB did not start; last lines of $dir/error.log:"
  tail -n 30 "$dir/error.log" >&2
  exit 1
}

start() {
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server mariadb-client
  start_server "$primary_dir" "$AQUIFER_MARIADB_PRIMARY_PORT" --server-id=1
  start_server "$replica_dir" "$AQUIFER_MARIADB_REPLICA_PORT" --server-id=2 --read-only=1
  sql "$primary_dir" "create database if not exists test;
    create user if not exists 'root'@'127.0.0.1';
    grant all on *.* to 'root'@'127.0.0.1' with grant option;
    create user if not exists 'aquifer'@'127.0.0.1';
    grant all on test.* to 'aquifer'@'127.0.0.1';
    grant binlog monitor, slave monitor on *.* to 'aquifer'@'127.0.0.1';"
  # Replicating already (a second start): leave it as it is. A replica stopped by hand (or promoted) is set up
  # again from its own slave position.
  if [ "$(sql "$replica_dir" "show slave status" | wc -l)" = 0 ]; then
    log "pointing the replica at 127.0.0.1:$AQUIFER_MARIADB_PRIMARY_PORT (GTID, slave_pos)"
    sql "$replica_dir" "set global gtid_slave_pos = '';
      change master to master_host = '127.0.0.1', master_port = $AQUIFER_MARIADB_PRIMARY_PORT,
        master_user = 'root', master_connect_retry = 1, master_use_gtid = slave_pos;"
  fi
  sql "$replica_dir" "start slave; set global read_only = 1;"
  local position waited
  position=$(sql "$primary_dir" "select @@gtid_binlog_pos")
  waited=$(sql "$replica_dir" "select master_gtid_wait('$position', 60)")
  [ "$waited" = 0 ] || { log "the replica did not reach $position within 60 s"; sql "$replica_dir" 'show slave status\G' >&2; exit 1; }
  log "MariaDB primary on 127.0.0.1:$AQUIFER_MARIADB_PRIMARY_PORT, replica on 127.0.0.1:$AQUIFER_MARIADB_REPLICA_PORT (at $position)"
}

case "${1:-start}" in
  start) start ;;
  stop)
    stop_pid "$replica_dir"
    stop_pid "$primary_dir"
    ;;
  destroy)
    stop_pid "$replica_dir"
    stop_pid "$primary_dir"
    rm -rf "$AQUIFER_SERVICES_DIR/mariadb-replicas"
    ;;
  status)
    for dir in "$primary_dir" "$replica_dir"; do
      if pid=$(pid_of "$dir"); then
        printf '%-8s running (pid %s), read_only=%s\n' "$(basename "$dir")" "$pid" "$(sql "$dir" "select @@read_only")"
      else
        printf '%-8s stopped\n' "$(basename "$dir")"
      fi
    done
    pid_of "$replica_dir" >/dev/null &&
      mariadb --no-defaults -uroot --socket="$replica_dir/run/mysqld.sock" -e 'show slave status\G' |
      grep -E 'Slave_(IO|SQL)_Running:|Seconds_Behind_Master|Gtid_IO_Pos' || true
    ;;
  env)
    cat <<ENV
export AQUIFER_MARIADB_PRIMARY_PORT='$AQUIFER_MARIADB_PRIMARY_PORT'
export AQUIFER_MARIADB_REPLICA_PORT='$AQUIFER_MARIADB_REPLICA_PORT'
export MYSQL_URL='mysql://aquifer@127.0.0.1:$AQUIFER_MARIADB_PRIMARY_PORT,127.0.0.1:$AQUIFER_MARIADB_REPLICA_PORT/test'
ENV
    ;;
  *)
    echo "usage: $0 start|stop|status|env|destroy" >&2
    exit 2
    ;;
esac
