#!/usr/bin/env bash
# A second MariaDB 10.11 (the installed binaries, its own data directory) with TLS, for aquifer-mysql's TLS
# tests: 127.0.0.1:$AQUIFER_MARIADB_TLS_PORT, user `aquifer_tls` (password `aquifer-tls`, REQUIRE SSL) on
# database `test`.
# Certificates are made once with openssl in $AQUIFER_SERVICES_DIR/mariadb-tls/certs: a throwaway CA (ca.pem,
# what clients trust), a server certificate for 127.0.0.1 and localhost signed by it, and an unrelated CA
# (other-ca.pem) for "untrusted certificate" tests. Data in .../data, log in .../error.log, PID in .../server.pid.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=$AQUIFER_SERVICES_DIR/mariadb-tls
port=$AQUIFER_MARIADB_TLS_PORT
certs=$dir/certs
sock=$dir/run/mysqld.sock
user=()
[ "$(id -u)" = 0 ] && user=(--user=mysql) # mariadbd drops root's privileges itself

command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
command -v openssl >/dev/null || apt_install openssl

# A server of ours whose certificates or socket are gone would present certificates nobody can verify any
# more, or does not listen where it should: stop it and start afresh.
if pid=$(pid_of "$dir") && { [ ! -s "$certs/ca.pem" ] || [ ! -S "$sock" ] || ! port_open 127.0.0.1 "$port"; }; then
  log "restarting the TLS MariaDB (pid $pid): its files were removed or its port changed"
  stop_pid "$dir"
fi
mkdir -p "$certs" "$dir/data" "$dir/run"

if [ ! -s "$certs/ca.pem" ] || [ ! -s "$certs/server-cert.pem" ] || [ ! -s "$certs/other-ca.pem" ]; then
  log "making TLS certificates in $certs"
  (
    cd "$certs"
    rm -f ./*.pem ./*.srl ./*.cnf
    cat >ca.cnf <<'EOF'
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = aquifer test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    cat >server.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = 127.0.0.1
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
EOF
    openssl ecparam -name prime256v1 -genkey -noout -out ca-key.pem 2>/dev/null
    openssl req -new -x509 -days 3650 -key ca-key.pem -config ca.cnf -out ca.pem
    openssl ecparam -name prime256v1 -genkey -noout -out server-key.pem 2>/dev/null
    openssl req -new -key server-key.pem -config server.cnf -out server.csr
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
      -extfile server.cnf -extensions v3_server -out server-cert.pem 2>/dev/null
    sed 's/aquifer test CA/unrelated CA/' ca.cnf >other.cnf
    openssl ecparam -name prime256v1 -genkey -noout -out other-ca-key.pem 2>/dev/null
    openssl req -new -x509 -days 3650 -key other-ca-key.pem -config other.cnf -out other-ca.pem
    chmod 644 ./*.pem
  )
fi

if [ ! -d "$dir/data/mysql" ]; then
  log "initialising the TLS MariaDB data directory in $dir/data"
  own "$dir/data" "$dir/run" mysql
  mariadb-install-db --no-defaults "${user[@]}" --datadir="$dir/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 ||
    { log "mariadb-install-db failed (see $dir/install.log)"; exit 1; }
fi

if ! pid_of "$dir" >/dev/null; then
  if port_open 127.0.0.1 "$port"; then
    log "port $port is taken by something that is not our TLS MariaDB; set AQUIFER_MARIADB_TLS_PORT (scripts/services/ports.env)"
    exit 1
  fi
  log "starting the TLS MariaDB on 127.0.0.1:$port"
  own "$dir" mysql
  rm -f "$dir/server.pid"
  # Small buffers: it only serves a few test connections. mariadbd writes server.pid itself once it listens.
  setsid nohup /usr/sbin/mariadbd --no-defaults "${user[@]}" --datadir="$dir/data" \
    --bind-address=127.0.0.1 --port="$port" --socket="$sock" --pid-file="$dir/server.pid" \
    --skip-name-resolve --character-set-server=utf8mb4 --innodb-buffer-pool-size=16M \
    --performance-schema=OFF --max-connections=50 \
    --ssl-ca="$certs/ca.pem" --ssl-cert="$certs/server-cert.pem" --ssl-key="$certs/server-key.pem" \
    --log-error="$dir/error.log" >/dev/null 2>&1 </dev/null &
  for _ in $(seq 1 300); do pid_of "$dir" >/dev/null && port_open 127.0.0.1 "$port" && break; sleep 0.2; done
  pid_of "$dir" >/dev/null && port_open 127.0.0.1 "$port" ||
    { log "the TLS MariaDB did not start (see $dir/error.log)"; exit 1; }
fi
for _ in $(seq 1 50); do mariadb --no-defaults -uroot --socket="$sock" -e "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
mariadb --no-defaults -uroot --socket="$sock" -e "create database if not exists test;
  create user if not exists 'aquifer_tls'@'%' identified by 'aquifer-tls' require ssl;
  grant all on test.* to 'aquifer_tls'@'%';"
log "TLS MariaDB ready on 127.0.0.1:$port (CA: $certs/ca.pem)"
