#!/usr/bin/env bash
# Installs (on Debian) and starts every server the tests need, bound to 127.0.0.1. Idempotent: a server that
# already answers is left alone. Each server has its own script in scripts/services/, run in name order.
#
#   bash scripts/dev-services.sh            # all of them
#   bash scripts/dev-services.sh postgres   # only scripts/services/*postgres*.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export AQUIFER_SERVICES_DIR=${AQUIFER_SERVICES_DIR:-/tmp/aquifer-services}
mkdir -p "$AQUIFER_SERVICES_DIR"

# shellcheck source=scripts/services/lib.sh
source "$here/services/lib.sh"

status=0
for script in "$here"/services/[0-9]*.sh; do
  name=$(basename "$script" .sh)
  if [ $# -gt 0 ]; then
    match=0
    for want in "$@"; do [[ "$name" == *"$want"* ]] && match=1; done
    [ $match = 1 ] || continue
  fi
  log "== $name"
  if ! bash "$script"; then
    log "!! $name failed"
    status=1
  fi
done
exit $status
