#!/usr/bin/env bash
# A second MariaDB 10.11 (the preinstalled binaries, its own data directory) with TLS, for aquifer-mysql's TLS
# tests: 127.0.0.1:3307, user `aquifer_tls` (password `aquifer-tls`, REQUIRE SSL) on database `test`.
# Certificates are made once with openssl in $AQUIFER_SERVICES_DIR/mariadb-tls/certs: a throwaway CA (ca.pem,
# what clients trust), a server certificate for 127.0.0.1 and localhost signed by it, and an unrelated CA
# (other-ca.pem) for "untrusted certificate" tests. The shared server on 3306 is left untouched.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir=${AQUIFER_SERVICES_DIR:-/tmp/aquifer-services}/mariadb-tls
port=3307
certs=$dir/certs
sock=$dir/run/mysqld.sock

# A server still listening although its files are gone (a cleaned /tmp) would present certificates nobody
# can verify any more: stop that one (found by its own data directory) and start afresh.
if port_open 127.0.0.1 $port && { [ ! -s "$certs/ca.pem" ] || [ ! -S "$sock" ]; }; then
  pid=$(pgrep -f -- "--datadir=$dir/data" | head -1 || true)
  if [ -n "$pid" ]; then
    log "restarting the TLS MariaDB (pid $pid): its files were removed"
    kill "$pid"
    for _ in $(seq 1 100); do port_open 127.0.0.1 $port || break; sleep 0.1; done
  fi
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
  chown -R mysql:mysql "$dir/data" "$dir/run"
  mariadb-install-db --no-defaults --user=mysql --datadir="$dir/data" \
    --auth-root-authentication-method=socket --skip-test-db >"$dir/install.log" 2>&1 ||
    { log "mariadb-install-db failed (see $dir/install.log)"; exit 1; }
fi

if ! port_open 127.0.0.1 $port; then
  log "starting the TLS MariaDB on 127.0.0.1:$port"
  chown -R mysql:mysql "$dir/data" "$dir/run"
  # Small buffers: it only serves a few test connections.
  setsid nohup /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$dir/data" \
    --bind-address=127.0.0.1 --port=$port --socket="$sock" --pid-file="$dir/run/mysqld.pid" \
    --skip-name-resolve --character-set-server=utf8mb4 --innodb-buffer-pool-size=16M \
    --performance-schema=OFF --max-connections=50 \
    --ssl-ca="$certs/ca.pem" --ssl-cert="$certs/server-cert.pem" --ssl-key="$certs/server-key.pem" \
    --log-error="$dir/error.log" >/dev/null 2>&1 </dev/null &
  wait_for_port 127.0.0.1 $port 60 || { log "the TLS MariaDB did not start (see $dir/error.log)"; exit 1; }
fi
for _ in $(seq 1 50); do mariadb -uroot --socket="$sock" -e "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
mariadb -uroot --socket="$sock" -e "create database if not exists test;
  create user if not exists 'aquifer_tls'@'%' identified by 'aquifer-tls' require ssl;
  grant all on test.* to 'aquifer_tls'@'%';"
log "TLS MariaDB ready on 127.0.0.1:$port (CA: $certs/ca.pem)"
