#!/usr/bin/env bash
# Debian's Chromium for the browser tests of `pipe serve` (test/serve/, test/web/): headless, driven by
# puppeteer-core, which downloads no browser of its own.
#
# Idempotent: runs apt only when /usr/bin/chromium is missing. Needs root (or sudo) on Debian 12. Elsewhere, point
# COLORPIPE_CHROMIUM at a Chromium or Chrome binary. Usage, from anywhere in the repository:
#   bash scripts/setup-chromium.sh
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup-chromium: $*"; }
has_chromium() { /usr/bin/chromium --version >/dev/null 2>&1; }

if has_chromium; then
  say "chromium already installed ($(/usr/bin/chromium --version 2>/dev/null))"
  exit 0
fi
SUDO=''
if [ "$(id -u)" -ne 0 ]; then command -v sudo >/dev/null && SUDO='sudo' || { say "needs root (or sudo) for apt-get" >&2; exit 1; }; fi
# shellcheck disable=SC1091
. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != debian ] && [ "${ID_LIKE:-}" != debian ]; then
  say "written for Debian; this is ${PRETTY_NAME:-an unknown system}. Install Chromium and set COLORPIPE_CHROMIUM." >&2
  exit 1
fi
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp); trap 'rm -f "$log"' EXIT
# Quiet: apt's output is shown only when it fails. Fonts come with chromium's own dependencies.
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 chromium; } >"$log" 2>&1; then
  cat "$log" >&2; say "apt-get failed" >&2; exit 1
fi
has_chromium || { say "chromium installed but /usr/bin/chromium does not start" >&2; exit 1; }
say "installed $(/usr/bin/chromium --version 2>/dev/null) in $(( $(date +%s) - start )) s"
