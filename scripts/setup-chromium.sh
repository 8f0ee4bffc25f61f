#!/usr/bin/env bash
# Debian's Chromium for the browser tests of `pipe serve` (test/serve/, test/web/): headless, driven by
# puppeteer-core, which downloads no browser of its own.
#
# Idempotent: runs apt only when /usr/bin/chromium is missing. Needs root (or sudo) on Debian 12. Elsewhere, point
# COLORPIPE_CHROMIUM at a Chromium or Chrome binary. Usage, from anywhere in the repository:
#   bash scripts/setup-chromium.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
say() { echo "setup-chromium: $*"; }
has_chromium() { /usr/bin/chromium --version >/dev/null 2>&1; }

if has_chromium; then
  say "chromium already installed ($(/usr/bin/chromium --version 2>/dev/null))"
  exit 0
fi
need_root
need_debian 'Install Chromium and set COLORPIPE_CHROMIUM.'
start=$(date +%s)
# Fonts come with chromium's own dependencies.
apt_quiet chromium
has_chromium || { say "chromium installed but /usr/bin/chromium does not start" >&2; exit 1; }
say "installed $(/usr/bin/chromium --version 2>/dev/null) in $(( $(date +%s) - start )) s"
