#!/usr/bin/env bash
# PostgreSQL 15 (preinstalled): 127.0.0.1:5432, trust auth, database `test`.
# Also a password-protected role `aquifer_pw` (password `aquifer-secret`, scram-sha-256 over TCP) so tests can
# check that a wrong password is an authentication error: trust auth accepts any password otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! port_open 127.0.0.1 5432; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_for_port 127.0.0.1 5432 30 || { log "PostgreSQL did not start"; exit 1; }
fi


psql -U postgres -h 127.0.0.1 -qAt -c "select 1" >/dev/null
psql -U postgres -h 127.0.0.1 -qAt -tc "select 1 from pg_database where datname='test'" | grep -q 1 ||
  psql -U postgres -h 127.0.0.1 -q -c "create database test"
psql -U postgres -h 127.0.0.1 -q -d test -c "create extension if not exists pg_trgm" >/dev/null
psql -U postgres -h 127.0.0.1 -q -c "do \$\$ begin
  if not exists (select 1 from pg_roles where rolname = 'aquifer_pw') then
    create role aquifer_pw login password 'aquifer-secret';
  end if; end \$\$;" >/dev/null
psql -U postgres -h 127.0.0.1 -q -c "set password_encryption = 'scram-sha-256'; alter role aquifer_pw password 'aquifer-secret'" >/dev/null

hba=$(psql -U postgres -h 127.0.0.1 -qAt -c "show hba_file")
line="host all aquifer_pw 127.0.0.1/32 scram-sha-256"
if ! grep -qF "$line" "$hba"; then
  log "adding '$line' to $hba"
  # Ahead of the trust lines: the first matching line wins.
  sed -i "0,/^\(local\|host\)/s||$line\n&|" "$hba"
  psql -U postgres -h 127.0.0.1 -qAt -c "select pg_reload_conf()" >/dev/null
fi
log "PostgreSQL ready on 127.0.0.1:5432"
