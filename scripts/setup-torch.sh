#!/usr/bin/env bash
# PyTorch for the torch engine's tests: Debian's python3-torch (1.13, CPU), without recommends.
#
# Idempotent: runs apt only when /usr/bin/python3 cannot import torch. Needs root (or sudo) on Debian 12.
# Elsewhere, install torch >= 1.13 for a Python by hand (pip install torch) and point COLORPIPE_PYTHON at it.
# Usage, from anywhere in the repository:  bash scripts/setup-torch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
say() { echo "setup-torch: $*"; }
has_torch() { /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; }

if has_torch; then
  say "torch already installed ($(/usr/bin/python3 -c 'import torch; print(torch.__version__)'))"
  exit 0
fi
need_root
need_debian 'Install torch >= 1.13 (pip install torch) and set COLORPIPE_PYTHON.'
start=$(date +%s)
apt_quiet python3-torch
has_torch || { say "python3-torch installed but /usr/bin/python3 cannot import torch" >&2; exit 1; }
say "installed python3-torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') in $(( $(date +%s) - start )) s"
