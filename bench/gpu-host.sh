#!/usr/bin/env bash
# Issue 10's one call on the GPU host: every measurement in one run, each part under `timeout`, ONE JSON
# document on stdout (progress on stderr). Works from the repository root or the unpacked app directory.
#
# Here, first: npm run build; optionally copy real JPEGs to scratch/photos; then pack, with this machine's node,
# into .device/ for the host: dist package.json node_modules bench/gpu-host.sh bench/torch_model.py configs
# fixtures src/torch/py scratch/photos (src/torch/py: the PyTorch engine's Python module, run by the host's python3)
# On the host (carry [".device"], timeout_s 600):
#   bash .device/unpack.sh && export PATH=/tmp/nodebin:$PATH VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
#     && cd /tmp/app && bash bench/gpu-host.sh --photos scratch/photos > $OUT/gpu-host.json
# Rehearsal on a machine without a GPU (lavapipe, bash scripts/setup-software-gpu.sh):
#   COLORPIPE_SOFTWARE_GPU=1 bash bench/gpu-host.sh --quick > quick.json
#
# Options: --quick (small sizes, every part), --photos DIR (JPEGs for the loader, colorize and torch engine parts;
# default fixtures/images/renewable), --processes 1,2,4,8,16, --budget-s 550 (the whole run's target: the device's
# 10 minutes a command, less margin).
set -uo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "gpu-host: no node on PATH (on the host: bash .device/unpack.sh; export PATH=/tmp/nodebin:\$PATH)" >&2; exit 1; }
command -v timeout >/dev/null || { echo "gpu-host: needs coreutils' timeout" >&2; exit 1; }
[ -f dist/bench/gpu-host.js ] || { echo "gpu-host: dist/bench/gpu-host.js missing: run npm run build (and pack dist)" >&2; exit 1; }
# A safety bound: the parts' own limits add up to 545 s (dist/bench/gpu-host.js), so the JSON comes before this.
exec timeout --kill-after=15 570 node dist/bench/gpu-host.js "$@"
