#!/usr/bin/env bash
# PgBouncer (Debian package) in transaction-pooling mode on 127.0.0.1:6432, forwarding database `test` to the
# local PostgreSQL (127.0.0.1:5432, trust) as user postgres. Runs as user postgres (PgBouncer refuses root),
# in the background, with its files in $AQUIFER_SERVICES_DIR/pgbouncer. Idempotent: a PgBouncer that already
# answers for `test` is left alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=${AQUIFER_SERVICES_DIR:-/tmp/aquifer-services}/pgbouncer
answers() { psql -h 127.0.0.1 -p 6432 -U postgres -d test -qAt -c "select 1" >/dev/null 2>&1; }

if answers; then
  log "PgBouncer ready on 127.0.0.1:6432"
  exit 0
fi
if port_open 127.0.0.1 6432; then
  log "something else listens on 127.0.0.1:6432 and does not serve database test; stop it first"
  exit 1
fi

apt_install pgbouncer
# Where the package's own service could start on install (it is denied in containers), it would hold the
# port with its default configuration and no database `test`: stop it in favour of this one.
if port_open 127.0.0.1 6432 && ! answers && [ -x /etc/init.d/pgbouncer ]; then
  log "stopping the pgbouncer package's default service"
  /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
fi
mkdir -p "$dir"
cat >"$dir/pgbouncer.ini" <<INI
[databases]
test = host=127.0.0.1 port=5432 dbname=test user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6432
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
pidfile = $dir/pgbouncer.pid
INI
printf '"postgres" ""\n' >"$dir/userlist.txt"
chown -R postgres "$dir"

log "starting PgBouncer (transaction pooling) on 127.0.0.1:6432"
runuser -u postgres -- pgbouncer -d "$dir/pgbouncer.ini"
for _ in $(seq 1 50); do
  answers && { log "PgBouncer ready on 127.0.0.1:6432"; exit 0; }
  sleep 0.2
done
log "PgBouncer did not answer within 10 s; see $dir/pgbouncer.log"
exit 1
