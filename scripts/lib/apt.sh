# Shared by the scripts/setup-*.sh installers (sourced, not run): root or sudo, a Debian check, and a quiet apt-get.
# Each caller defines say() first.

# Sets SUDO to '' as root, 'sudo' where it exists; else stops.
need_root() {
  SUDO=''
  if [ "$(id -u)" -ne 0 ]; then command -v sudo >/dev/null && SUDO='sudo' || { say "needs root (or sudo) for apt-get" >&2; exit 1; }; fi
}

# Stops with "$1" (what to do instead) unless this is Debian or a derivative.
need_debian() {
  # shellcheck disable=SC1091
  . /etc/os-release 2>/dev/null || true
  if [ "${ID:-}" != debian ] && [ "${ID_LIKE:-}" != debian ]; then
    say "written for Debian; this is ${PRETTY_NAME:-an unknown system}. $1" >&2
    exit 1
  fi
}

# apt-get update, then install "$@" (packages and apt options) without recommends. Quiet: apt's output is shown
# only when it fails.
apt_quiet() {
  export DEBIAN_FRONTEND=noninteractive
  local log
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "$@"; } >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; say "apt-get failed" >&2; exit 1
  fi
  rm -f "$log"
}
