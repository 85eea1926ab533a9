#!/usr/bin/env bash
# Installs (on Debian: the packages that are missing, their packaged services not started) and starts every
# server the tests need: project-owned instances, each with its own data directory under one services
# directory and its own port on 127.0.0.1; servers installed on the machine are never reconfigured. Idempotent:
# a server of ours that answers is left alone. Each server has its own script in scripts/services/, run in name
# order; the ports are in scripts/services/ports.env.
#
#   bash scripts/dev-services.sh                # start all of them
#   bash scripts/dev-services.sh postgres       # only scripts/services/*postgres*.sh
#   bash scripts/dev-services.sh stop [NAME..]  # stop what these scripts started (by their PID files)
#   bash scripts/dev-services.sh status         # what runs, where, with which PID
#   bash scripts/dev-services.sh env            # export lines for the examples: eval "$(bash scripts/dev-services.sh env)"
#
# The services directory is $AQUIFER_SERVICES_DIR, by default ${XDG_STATE_HOME:-~/.local/state}/aquifer/services
# (as root /var/lib/aquifer/services: the servers then run as the packages' users, which cannot enter /root).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=scripts/services/lib.sh
source "$here/services/lib.sh"

action=start
case "${1:-}" in
  start | stop | status | env) action=$1; shift ;;
esac

# The scripts in name order (reversed for stop), filtered by the names given.
scripts=()
for script in "$here"/services/[0-9]*.sh; do
  name=$(basename "$script" .sh)
  if [ $# -gt 0 ]; then
    match=0
    for want in "$@"; do [[ "$name" == *"$want"* ]] && match=1; done
    [ $match = 1 ] || continue
  fi
  scripts+=("$script")
done
# The directory each script keeps its server in: its name without the number.
dir_of() { local n; n=$(basename "$1" .sh); echo "$AQUIFER_SERVICES_DIR/${n#*-}"; }

case $action in
  start)
    mkdir -p "$AQUIFER_SERVICES_DIR"
    log "services directory: $AQUIFER_SERVICES_DIR"
    status=0
    for script in "${scripts[@]}"; do
      name=$(basename "$script" .sh)
      log "== $name"
      if ! bash "$script"; then
        log "!! $name failed"
        status=1
      fi
    done
    exit $status
    ;;
  stop)
    for ((i = ${#scripts[@]} - 1; i >= 0; i--)); do
      dir=$(dir_of "${scripts[$i]}")
      # PostgreSQL: SIGINT is its fast shutdown (SIGTERM would wait for every client to disconnect).
      case $dir in */postgres) sig=INT ;; *) sig=TERM ;; esac
      stop_pid "$dir" "$sig"
    done
    ;;
  status)
    status=0
    for script in "${scripts[@]}"; do
      dir=$(dir_of "$script")
      if pid=$(pid_of "$dir"); then
        printf '%-16s running (pid %s) in %s\n' "$(basename "$dir")" "$pid" "$dir"
      else
        printf '%-16s stopped\n' "$(basename "$dir")"
        status=3
      fi
    done
    exit $status
    ;;
  env)
    cat <<ENV
export AQUIFER_SERVICES_DIR='$AQUIFER_SERVICES_DIR'
export POSTGRES_URL='postgres://postgres@127.0.0.1:$AQUIFER_PG_PORT/test?sslmode=disable'
export MYSQL_URL='mysql://root@127.0.0.1:$AQUIFER_MARIADB_PORT/test'
export NEO4J_URI='bolt://127.0.0.1:$AQUIFER_BOLT_PORT'
export OTEL_EXPORTER_OTLP_ENDPOINT='http://127.0.0.1:$AQUIFER_VICTORIA_PORT/opentelemetry'
ENV
    ;;
esac
