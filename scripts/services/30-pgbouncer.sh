#!/usr/bin/env bash
# PgBouncer (Debian package, installed if missing, its packaged service not started) in transaction-pooling
# mode on 127.0.0.1:$AQUIFER_PGBOUNCER_PORT, forwarding database `test` to the project's PostgreSQL
# (127.0.0.1:$AQUIFER_PG_PORT, trust) as user postgres. Runs as user postgres when started by root (PgBouncer
# refuses root), in the background, with its files in $AQUIFER_SERVICES_DIR/pgbouncer (log pgbouncer.log, PID
# server.pid). Idempotent: our PgBouncer that answers for `test` is left alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=$AQUIFER_SERVICES_DIR/pgbouncer
port=$AQUIFER_PGBOUNCER_PORT
user=postgres
[ "$(id -u)" = 0 ] || user=$(id -un)
answers() { psql -X -h 127.0.0.1 -p "$port" -U postgres -d test -qAt -c "select 1" >/dev/null 2>&1; }

apt_install pgbouncer
mkdir -p "$dir"
cat >"$dir/pgbouncer.ini.new" <<INI
[databases]
test = host=127.0.0.1 port=$AQUIFER_PG_PORT dbname=test user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
pool_mode = transaction
; Fewer server connections than clients, so clients really share server connections between transactions.
default_pool_size = 10
max_client_conn = 400
; Trust, like the PostgreSQL it forwards to; the user must still be listed in auth_file.
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
logfile = $dir/pgbouncer.log
pidfile = $dir/server.pid
INI
# A changed configuration (another port) restarts ours.
if pid=$(pid_of "$dir") && { ! cmp -s "$dir/pgbouncer.ini.new" "$dir/pgbouncer.ini" || ! answers; }; then
  stop_pid "$dir"
fi
mv "$dir/pgbouncer.ini.new" "$dir/pgbouncer.ini"
printf '"postgres" ""\n' >"$dir/userlist.txt"
own "$dir" "$user"

if pid_of "$dir" >/dev/null && answers; then
  log "PgBouncer ready on 127.0.0.1:$port"
  exit 0
fi
if port_open 127.0.0.1 "$port"; then
  log "port $port is taken by something that is not our PgBouncer; set AQUIFER_PGBOUNCER_PORT (scripts/services/ports.env)"
  exit 1
fi

log "starting PgBouncer (transaction pooling) on 127.0.0.1:$port"
# -d: it daemonizes and writes server.pid itself.
as_user "$user" pgbouncer -d "$dir/pgbouncer.ini"
for _ in $(seq 1 50); do
  answers && { log "PgBouncer ready on 127.0.0.1:$port (pid $(cat "$dir/server.pid"))"; exit 0; }
  sleep 0.2
done
log "PgBouncer did not answer within 10 s; see $dir/pgbouncer.log"
exit 1
