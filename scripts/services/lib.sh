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
  local pkg=$1 dest=$2 apt_dir=${AQUIFER_SERVICES_DIR:-/tmp/aquifer-services}/apt-sid
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
  dpkg -x "$apt_dir/debs/${pkg}"_*.deb "$dest"
  # The .deb is not needed once unpacked.
  rm -f "$apt_dir/debs/${pkg}"_*.deb
}
