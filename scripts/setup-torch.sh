#!/usr/bin/env bash
# PyTorch for the torch engine's tests: Debian's python3-torch (1.13, CPU), without recommends.
#
# Idempotent: runs apt only when /usr/bin/python3 cannot import torch. Needs root (or sudo) on Debian 12.
# Elsewhere, install torch >= 1.13 for a Python by hand (pip install torch) and point COLORPIPE_PYTHON at it.
# Usage, from anywhere in the repository:  bash scripts/setup-torch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "setup-torch: $*"; }
has_torch() { /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; }

if has_torch; then
  say "torch already installed ($(/usr/bin/python3 -c 'import torch; print(torch.__version__)'))"
  exit 0
fi
SUDO=''
if [ "$(id -u)" -ne 0 ]; then command -v sudo >/dev/null && SUDO='sudo' || { say "needs root (or sudo) for apt-get" >&2; exit 1; }; fi
# shellcheck disable=SC1091
. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != debian ] && [ "${ID_LIKE:-}" != debian ]; then
  say "written for Debian; this is ${PRETTY_NAME:-an unknown system}. Install torch >= 1.13 (pip install torch) and set COLORPIPE_PYTHON." >&2
  exit 1
fi
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp); trap 'rm -f "$log"' EXIT
# Quiet: apt's output is shown only when it fails.
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 python3-torch; } >"$log" 2>&1; then
  cat "$log" >&2; say "apt-get failed" >&2; exit 1
fi
has_torch || { say "python3-torch installed but /usr/bin/python3 cannot import torch" >&2; exit 1; }
say "installed python3-torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') in $(( $(date +%s) - start )) s"
