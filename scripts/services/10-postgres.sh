#!/usr/bin/env bash
# PostgreSQL 15 of the project's own: the installed binaries (Debian's postgresql-15, installed if missing,
# its packaged cluster neither started nor touched), data in $AQUIFER_SERVICES_DIR/postgres/data, on
# 127.0.0.1:$AQUIFER_PG_PORT only, its unix socket in .../run. Superuser `postgres`, trust auth, database `test`
# with pg_trgm. Also a password-protected role `aquifer_pw` (password `aquifer-secret`, scram-sha-256 over TCP)
# so tests can check that a wrong password is an authentication error: trust auth accepts any password
# otherwise. TLS is on with a self-signed certificate made here (`sslmode=require` encrypts, `verify-full`
# refuses it). Log in .../server.log, PID in .../server.pid. Idempotent: a server that answers is set up and
# left running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=$AQUIFER_SERVICES_DIR/postgres
port=$AQUIFER_PG_PORT
bin=/usr/lib/postgresql/15/bin
user=postgres # the OS user the server runs as, when running as root

[ -x "$bin/initdb" ] || apt_install postgresql-15
command -v openssl >/dev/null || apt_install openssl
[ "$(id -u)" = 0 ] || user=$(id -un)

sql() { psql -h 127.0.0.1 -p "$port" -U postgres -X -qAt "$@"; }
answers() { sql -d postgres -c "select 1" >/dev/null 2>&1; }

mkdir -p "$dir"
if [ ! -s "$dir/data/PG_VERSION" ]; then
  log "initialising PostgreSQL's data directory in $dir/data"
  rm -rf "$dir/data" "$dir/certs"
  mkdir -p "$dir/data" "$dir/run" "$dir/certs"
  own "$dir" "$user"
  as_user "$user" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$dir/initdb.log" 2>&1 || { log "initdb failed (see $dir/initdb.log)"; exit 1; }
  echo "include 'aquifer.conf'" >>"$dir/data/postgresql.conf"
fi
if [ ! -s "$dir/certs/server.crt" ]; then
  mkdir -p "$dir/certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
    -keyout "$dir/certs/server.key" -out "$dir/certs/server.crt" 2>/dev/null
  chmod 600 "$dir/certs/server.key"
fi
mkdir -p "$dir/run"
# Rewritten at every start, so a changed port takes effect. Settings as the machines' packaged cluster has them.
cat >"$dir/data/aquifer.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/run'
max_connections = 100
shared_buffers = 128MB
ssl = on
ssl_cert_file = '$dir/certs/server.crt'
ssl_key_file = '$dir/certs/server.key'
timezone = 'Etc/UTC'
log_timezone = 'Etc/UTC'
default_text_search_config = 'pg_catalog.english'
autovacuum = off
CONF
# The first matching line wins: the password role ahead of the trust lines.
cat >"$dir/data/pg_hba.conf" <<HBA
local all all                 trust
host  all aquifer_pw 127.0.0.1/32 scram-sha-256
host  all all        127.0.0.1/32 trust
HBA
own "$dir" "$user"

if pid=$(pid_of "$dir") && ! answers; then
  log "our PostgreSQL (pid $pid) does not answer on 127.0.0.1:$port: restarting it"
  as_user "$user" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || stop_pid "$dir" INT
fi
if answers; then
  pid_of "$dir" >/dev/null || { log "something else answers on 127.0.0.1:$port; set AQUIFER_PG_PORT"; exit 1; }
  sql -d postgres -c "select pg_reload_conf()" >/dev/null
else
  if port_open 127.0.0.1 "$port"; then
    log "port $port is taken by something that is not our PostgreSQL; set AQUIFER_PG_PORT (scripts/services/ports.env)"
    exit 1
  fi
  log "starting PostgreSQL on 127.0.0.1:$port ($dir)"
  # pg_ctl runs the server in the background, detached from this script, its output in server.log.
  as_user "$user" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
    { log "PostgreSQL did not start; last lines of $dir/server.log:"; tail -n 30 "$dir/server.log" >&2; exit 1; }
  head -n1 "$dir/data/postmaster.pid" >"$dir/server.pid"
fi

sql -d postgres -tc "select 1 from pg_database where datname='test'" | grep -q 1 ||
  sql -d postgres -c "create database test"
sql -d test -c "set client_min_messages = warning; create extension if not exists pg_trgm" >/dev/null
sql -d postgres -c "do \$\$ begin
  if not exists (select 1 from pg_roles where rolname = 'aquifer_pw') then
    create role aquifer_pw login;
  end if; end \$\$;" >/dev/null
sql -d postgres -c "set password_encryption = 'scram-sha-256'; alter role aquifer_pw password 'aquifer-secret'" >/dev/null
log "PostgreSQL ready on 127.0.0.1:$port (pid $(cat "$dir/server.pid"))"
