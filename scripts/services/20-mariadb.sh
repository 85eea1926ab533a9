#!/usr/bin/env bash
# MariaDB 10.11 (preinstalled): 127.0.0.1:3306, root with an empty password, database `test`.
# Also a user `aquifer_pw`@`%` with password `aquifer-secret` for wrong-password tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! port_open 127.0.0.1 3306; then
  log "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for_port 127.0.0.1 3306 60 || { log "MariaDB did not start"; exit 1; }
fi
for _ in $(seq 1 50); do mariadb -uroot -h127.0.0.1 -e "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
mariadb -uroot -h127.0.0.1 -e "create database if not exists test;
  create user if not exists 'aquifer_pw'@'%' identified by 'aquifer-secret';
  create user if not exists 'aquifer_pw'@'localhost' identified by 'aquifer-secret';
  grant all on test.* to 'aquifer_pw'@'%';
  grant all on test.* to 'aquifer_pw'@'localhost';"
log "MariaDB ready on 127.0.0.1:3306"
