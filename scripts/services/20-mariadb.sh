#!/usr/bin/env bash
# MariaDB 10.11 of the project's own: the installed binaries (Debian's mariadb-server, installed if missing,
# its packaged server neither started nor touched), data in $AQUIFER_SERVICES_DIR/mariadb/data, on
# 127.0.0.1:$AQUIFER_MARIADB_PORT only, its socket in .../run/mysqld.sock. `root` without a password, database
# `test`; also a user `aquifer_pw`@`%` with password `aquifer-secret` for wrong-password tests. Log in
# .../error.log, PID in .../server.pid. Idempotent: a server that answers is set up and left running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=$AQUIFER_SERVICES_DIR/mariadb
port=$AQUIFER_MARIADB_PORT
sock=$dir/run/mysqld.sock
user=()
[ "$(id -u)" = 0 ] && user=(--user=mysql) # mariadbd drops root's privileges itself

command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server

sql() { mariadb --no-defaults -uroot --socket="$sock" "$@"; }
answers() { sql -e "select 1" >/dev/null 2>&1; }

mariadb_init "$dir"

if pid=$(pid_of "$dir") && ! port_open 127.0.0.1 "$port"; then
  log "our MariaDB (pid $pid) does not listen on 127.0.0.1:$port: restarting it"
  stop_pid "$dir"
fi
if ! pid_of "$dir" >/dev/null; then
  if port_open 127.0.0.1 "$port"; then
    log "port $port is taken by something that is not our MariaDB; set AQUIFER_MARIADB_PORT (scripts/services/ports.env)"
    exit 1
  fi
  log "starting MariaDB on 127.0.0.1:$port ($dir)"
  # setsid: the server outlives this script and the CI step that ran it. Settings as the machines' packaged
  # server has them (utf8mb4, no name resolution).
  setsid /usr/sbin/mariadbd --no-defaults "${user[@]}" --datadir="$dir/data" --bind-address=127.0.0.1 \
    --port="$port" --socket="$sock" --pid-file="$dir/server.pid" --skip-name-resolve --skip-log-bin \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci --max-connections=151 \
    --log-error="$dir/error.log" >/dev/null 2>&1 </dev/null &
  # mariadbd writes server.pid itself (as the user it runs as), once it listens.
  rm -f "$dir/server.pid"
  for _ in $(seq 1 300); do pid_of "$dir" >/dev/null && port_open 127.0.0.1 "$port" && break; sleep 0.2; done
  pid_of "$dir" >/dev/null && port_open 127.0.0.1 "$port" ||
    { log "MariaDB did not start; last lines of $dir/error.log:"; tail -n 30 "$dir/error.log" >&2; exit 1; }
fi
for _ in $(seq 1 50); do answers && break; sleep 0.2; done
sql -e "create database if not exists test;
  create user if not exists 'root'@'127.0.0.1';
  grant all on *.* to 'root'@'127.0.0.1' with grant option;
  create user if not exists 'aquifer_pw'@'%' identified by 'aquifer-secret';
  create user if not exists 'aquifer_pw'@'localhost' identified by 'aquifer-secret';
  grant all on test.* to 'aquifer_pw'@'%';
  grant all on test.* to 'aquifer_pw'@'localhost';"
log "MariaDB ready on 127.0.0.1:$port (pid $(cat "$dir/server.pid"))"
