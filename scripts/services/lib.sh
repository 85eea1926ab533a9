# Shared helpers for scripts/services/*.sh (sourced): the services directory, the ports, and starting,
# finding and stopping the servers this project owns.
log() { printf '[dev-services] %s\n' "$*" >&2; }

# The ports, overridable from the environment (scripts/services/ports.env).
# shellcheck source=scripts/services/ports.env
source "$(dirname "${BASH_SOURCE[0]}")/ports.env"

# Every server's files live in one directory of the project's: $AQUIFER_SERVICES_DIR/<server>/ (data, log,
# server.pid). By default the user's state directory; as root /var/lib/aquifer/services, because the servers
# then run as the packages' own users (postgres, mysql), which cannot enter root's 0700 home.
# crates/aquifer-testing/src/servers.rs computes the same default.
default_services_dir() {
  if [ "$(id -u)" = 0 ]; then
    echo /var/lib/aquifer/services
  else
    echo "${XDG_STATE_HOME:-$HOME/.local/state}/aquifer/services"
  fi
}
export AQUIFER_SERVICES_DIR=${AQUIFER_SERVICES_DIR:-$(default_services_dir)}

# as_user USER CMD...: CMD as USER when running as root (PostgreSQL refuses to run as root), as ourselves
# otherwise.
as_user() {
  local user=$1
  shift
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

# own DIR... USER: hands the directories to USER when running as root.
own() {
  local user=${*: -1}
  if [ "$(id -u)" = 0 ]; then chown -R "$user:" "${@:1:$#-1}"; fi
}

# mariadb_init DIR: creates DIR/data and DIR/run, the first time MariaDB's system tables in DIR/data
# (mariadb-install-db, its output in DIR/install.log; root authenticates by password, none set, and users are
# matched by address), and gives DIR to the mysql user when run as root. For 20-mariadb.sh and
# scripts/mariadb-replicas.sh.
mariadb_init() {
  local dir=$1 as_user=()
  [ "$(id -u)" = 0 ] && as_user=(--user=mysql) # mariadbd drops root's privileges itself
  mkdir -p "$dir/data" "$dir/run"
  if [ ! -d "$dir/data/mysql" ]; then
    log "initialising MariaDB's data directory in $dir/data"
    own "$dir" mysql
    mariadb-install-db --no-defaults "${as_user[@]}" --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve >"$dir/install.log" 2>&1 ||
      { log "mariadb-install-db failed (see $dir/install.log)"; exit 1; }
  fi
  own "$dir" mysql
}

# pid_of DIR: the PID in DIR/server.pid if that process is alive and is ours (its command line names DIR, so a
# reused PID is never taken for our server); nothing otherwise.
pid_of() {
  local dir=$1 pid
  pid=$(head -n1 "$dir/server.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir" || return 1
  echo "$pid"
}

# stop_pid DIR [SIGNAL]: stops the server whose PID DIR/server.pid holds (see pid_of), waiting up to 30 s
# before SIGKILL; removes the PID file. True if nothing of ours runs afterwards.
stop_pid() {
  local dir=$1 sig=${2:-TERM} pid i
  if ! pid=$(pid_of "$dir"); then
    rm -f "$dir/server.pid"
    return 0
  fi
  log "stopping $(basename "$dir") (pid $pid, SIG$sig)"
  kill -s "$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$(basename "$dir") (pid $pid) did not stop within 30 s: SIGKILL"
    kill -s KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$dir/server.pid"
}

# wait_for_port HOST PORT SECONDS: true once something accepts TCP connections.
wait_for_port() {
  local host=$1 port=$2 secs=${3:-30} i
  for ((i = 0; i < secs * 5; i++)); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

# port_open HOST PORT: true if something listens now.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# apt_install PKG...: installs missing Debian packages (quietly, once). The packaged services are not
# started: a policy-rc.d that denies every start is in place during the install (Debian's mechanism for this,
# see /usr/share/doc/init-system-helpers/README.policy-rc.d), unless the machine has its own policy-rc.d. A
# packaged server that already exists is left as it is.
apt_install() {
  local missing=() p
  # "install ok installed" only: a removed package keeps a dpkg record ("deinstall ok config-files").
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${missing[*]}; install them (as root: apt-get install ${missing[*]}) or run this as root"
    return 1
  fi
  log "installing ${missing[*]} (their packaged services are not started)"
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d ours=0 status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/services/lib.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    ours=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
    status=$?
  [ $ours = 1 ] && rm -f "$policy"
  return $status
}

# sid_mirror: the first Debian archive URI of the machine's apt sources (deb822 or one-line format), not the
# security archive.
sid_mirror() {
  local found
  found=$({
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources || true
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true
  } | awk '/^URIs:/ {print $2} /^deb / {print ($2 ~ /^\[/ ? $3 : $2)}' | grep -v security | grep debian | head -n1 || true)
  echo "${found:-http://deb.debian.org/debian}"
}

# sid_unpack PACKAGE DEST: fetches PACKAGE's .deb from Debian's unstable suite with `apt-get download` and
# unpacks it into DEST with `dpkg -x` (no system change: a private sources list, package lists and cache under
# $AQUIFER_SERVICES_DIR/apt-sid). The package lists are kept for a day, so the services that take a package
# from unstable (VictoriaMetrics, Prometheus) update them once.
sid_unpack() {
  local pkg=$1 dest=$2 apt_dir=$AQUIFER_SERVICES_DIR/apt-sid
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  echo "deb $(sid_mirror) sid main" >"$apt_dir/sources.list"
  local opts=(-o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=/nonexistent
    -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" -o Debug::NoLocking=1
    -o APT::Sandbox::User=root)
  if [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null)" ]; then
    log "updating the package lists of Debian's unstable suite ($(sid_mirror))"
    apt-get "${opts[@]}" update -qq >/dev/null
  fi
  log "downloading $pkg (suite unstable) into $dest"
  rm -f "$apt_dir/debs/${pkg}"_*.deb
  (cd "$apt_dir/debs" && apt-get "${opts[@]}" download -qq "$pkg" >/dev/null)
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  dpkg -x "$apt_dir/debs/${pkg}"_*.deb "$dest"
  # The .deb is not needed once unpacked.
  rm -f "$apt_dir/debs/${pkg}"_*.deb
}
