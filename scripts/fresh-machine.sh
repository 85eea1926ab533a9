#!/usr/bin/env bash
# Proves that README's two commands work on a stock Debian 12 with nothing preinstalled but the Rust toolchain:
# builds a minimal Debian 12 root with mmdebstrap (installed on the host if missing), bind-mounts the host's
# Rust toolchain (rustup's toolchains, cargo's home, and cargo-nextest when the host has it) and the repository
# into it, chroots in as root and runs
#
#   cargo run --example sqlite                                   # the quickstart: embedded SQLite, no server
#   bash scripts/dev-services.sh && bash scripts/test.sh         # every server installed and started, the suite
#
# Usage (as root):
#   bash scripts/fresh-machine.sh                 # both commands, the whole suite (long: hours on 2 cores)
#   bash scripts/fresh-machine.sh --tests 'ARGS'  # the services, then `cargo nextest run ARGS` instead of
#                                                 # scripts/test.sh (a subset, e.g. '-p aquifer-postgres')
#   bash scripts/fresh-machine.sh --keep          # keep the root for another run (it is reused when present)
#   AQUIFER_PG_PORT=25432 ... bash scripts/fresh-machine.sh   # other ports, when the host's servers take the defaults
#
# Besides the toolchain the root holds only what rustup itself requires of a machine (a C linker and libc's
# headers: gcc, libc6-dev; ca-certificates for crates.io): no database, no Python, no curl, no Node.js. It
# takes the host's network settings (resolver, added certificate authorities, apt's Acquire:: options). The
# chroot builds into its own target directory inside the root; the repository is mounted read-write (cargo
# writes nothing else there). On exit, whatever the outcome, the servers the run started are stopped
# (`dev-services.sh stop` inside the root), any process still running inside the root is killed by PID, and
# every mount is undone. Prints a summary at the end; the full log is in $AQUIFER_FRESH_DIR/run.log.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[fresh-machine] %s\n' "$*" >&2; }

work=${AQUIFER_FRESH_DIR:-/var/tmp/aquifer-fresh}
keep=0
tests=
while [ $# -gt 0 ]; do
  case $1 in
    --keep) keep=1 ;;
    --tests) tests=$2; shift ;;
    --repo) repo=$(cd "$2" && pwd); shift ;;
    *) echo "usage: $0 [--keep] [--tests 'NEXTEST ARGS'] [--repo DIR]" >&2; exit 64 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { log "run as root (mmdebstrap, mount and chroot need it)"; exit 1; }

root=$work/root
mkdir -p "$work"
exec > >(tee "$work/run.log") 2>&1

rustup_home=$(rustup show home 2>/dev/null || echo "${RUSTUP_HOME:-$HOME/.rustup}")
cargo_home=${CARGO_HOME:-$HOME/.cargo}
toolchain=$(rustup show active-toolchain 2>/dev/null | awk '{print $1}')
[ -d "$rustup_home/toolchains" ] && [ -x "$cargo_home/bin/cargo" ] ||
  { log "no Rust toolchain at $rustup_home / $cargo_home"; exit 1; }

# The host's Debian mirror (the first non-security archive of its apt sources).
mirror=$({
  grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources || true
  grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true
} | awk '/^URIs:/ {print $2} /^deb / {print ($2 ~ /^\[/ ? $3 : $2)}' | grep -v security | grep debian | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

mounts=()
# mount_in SRC DEST [OPTS]: bind-mounts SRC at $root/DEST, remembered for the clean-up.
mount_in() {
  if [ -d "$1" ]; then
    mkdir -p "$root$2"
  else
    mkdir -p "$(dirname "$root$2")" && touch "$root$2"
  fi
  mount --bind "$1" "$root$2"
  mounts+=("$root$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$root$2"; fi
}

cleanup() {
  local status=$? pid n
  set +e
  if [ -x "$root/usr/bin/bash" ] && [ -d "$root/src/scripts" ]; then
    log "stopping the servers the run started"
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      bash /src/scripts/dev-services.sh stop >/dev/null 2>&1
  fi
  # Anything else still running inside the root (a test's leftover): killed by PID.
  for n in 1 2; do
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
      [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$root" ] || continue
      log "killing pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)), still running in the root"
      kill -s "$([ $n = 1 ] && echo TERM || echo KILL)" "$pid" 2>/dev/null
    done
    sleep 2
  done
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount -R "${mounts[$i]}" 2>/dev/null || umount -lR "${mounts[$i]}"
  done
  if [ $keep = 0 ]; then
    log "removing $root"
    rm -rf --one-file-system "$root"
  fi
  log "exit status $status; log: $work/run.log"
  exit $status
}
trap cleanup EXIT

# 1. The root: Debian 12, minbase, plus what rustup requires of a machine.
if [ ! -x "$root/usr/bin/gcc" ]; then
  command -v mmdebstrap >/dev/null || {
    log "installing mmdebstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
  }
  rm -rf --one-file-system "$root"
  log "building a minimal Debian 12 root in $root from $mirror"
  start=$(date +%s)
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,gcc,libc6-dev bookworm "$root" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main"
  log "root built in $(($(date +%s) - start)) s ($(du -sh --one-file-system "$root" | cut -f1))"
fi
# The host's network, not the project's needs: its resolver, the certificate authorities it adds to Debian's
# (an egress proxy's, say), and apt's Acquire:: settings (a proxy; Check-Valid-Until for a snapshot mirror).
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1 || log "update-ca-certificates failed in the root"
fi
for f in /etc/apt/apt.conf.d/*; do
  if grep -qE '^[[:space:]]*Acquire::' "$f" 2>/dev/null; then cp "$f" "$root/etc/apt/apt.conf.d/"; fi
done

# 2. What the chroot needs of the kernel, and the toolchain and repository.
mkdir -p "$root/proc" "$root/sys" "$root/dev"
mount -t proc proc "$root/proc" && mounts+=("$root/proc")
mount -t sysfs sysfs "$root/sys" && mounts+=("$root/sys")
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev" && mounts+=("$root/dev")
mkdir -p "$root/run" && mount -t tmpfs tmpfs "$root/run" && mounts+=("$root/run")
mount_in "$rustup_home" /root/.rustup ro
mount_in "$cargo_home" /root/.cargo
if command -v cargo-nextest >/dev/null; then
  mount_in "$(command -v cargo-nextest)" /usr/local/bin/cargo-nextest ro
fi
mount_in "$repo" /src

# The ports (scripts/services/ports.env) pass into the root: the root shares the host's network, so a host
# whose own dev-services run on the default ports runs the proof on others (AQUIFER_PG_PORT=25432 ...).
ports=()
while IFS= read -r var; do ports+=("$var=${!var}"); done < <(compgen -v | grep -E '^AQUIFER_[A-Z_]+_PORT$' || true)

in_root() {
  chroot "$root" /usr/bin/env -i "${ports[@]}" HOME=/root USER=root LANG=C.UTF-8 TERM=dumb \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo RUSTUP_TOOLCHAIN="$toolchain" \
    CARGO_TARGET_DIR=/build/target CARGO_TERM_COLOR=never CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-$(nproc)}" \
    bash -c "cd /src && $1"
}

log "inside: $(in_root '. /etc/os-release; echo "$PRETTY_NAME"'), $(in_root 'cargo --version'), $(in_root 'rustc --version')"
log "inside, before: psql $(in_root 'command -v psql || echo absent'), mariadbd $(in_root 'command -v mariadbd || echo absent'), python3 $(in_root 'command -v python3 || echo absent'), curl $(in_root 'command -v curl || echo absent')"

summary=()
step() {
  local name=$1 cmd=$2 start status
  log "== $name: $cmd"
  start=$(date +%s)
  if in_root "$cmd"; then status=ok; else status="FAILED ($?)"; fi
  summary+=("$(printf '%-28s %-10s %5d s   %s' "$name" "$status" "$(($(date +%s) - start))" "$cmd")")
  [ "$status" = ok ]
}

overall=0
step quickstart "cargo run --example sqlite" || overall=1
step services "bash scripts/dev-services.sh" || overall=1
in_root "bash scripts/dev-services.sh status" || true
if [ -n "$tests" ]; then
  step tests "cargo nextest run --no-fail-fast $tests" || overall=1
else
  step tests "bash scripts/test.sh" || overall=1
fi

log "== summary (Debian 12 root from mmdebstrap, host toolchain $toolchain)"
printf '%s\n' "${summary[@]}" >&2
exit $overall
