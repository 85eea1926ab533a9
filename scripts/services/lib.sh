# Shared helpers for scripts/services/*.sh (sourced).
log() { printf '[dev-services] %s\n' "$*" >&2; }

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

# apt_install PKG...: installs missing Debian packages (quietly, once).
apt_install() {
  local missing=()
  # "install ok installed" only: a removed package keeps a dpkg record ("deinstall ok config-files").
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
}
