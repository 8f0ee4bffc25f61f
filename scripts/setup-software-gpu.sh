#!/usr/bin/env bash
# A software GPU for the webgpu tests: Mesa's lavapipe (a Vulkan device on the CPU) and the Vulkan loader.
#
# Debian 12's own Mesa (22.3) is too old for Dawn ("Vulkan shaderUniform*ArrayDynamicIndexing required"); Mesa 25
# from bookworm-backports works. Lavapipe is for correctness only: it is far slower than wasm.
#
# Idempotent: adds bookworm-backports only when no apt source names it, runs apt only when lavapipe or the loader
# is missing, then checks that Dawn (the `webgpu` npm package, when node_modules has it) finds an adapter.
# Needs root (or sudo) on Debian 12. Usage, from anywhere in the repository:  bash scripts/setup-software-gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
say() { echo "setup-software-gpu: $*"; }
need_root

# shellcheck disable=SC1091
. /etc/os-release 2>/dev/null || true
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  say "written for Debian 12 (bookworm); this is ${PRETTY_NAME:-an unknown system}. Install Mesa >= 24 (lavapipe) and libvulkan1 by hand." >&2
  exit 1
fi

lavapipe_ok() {
  # Mesa >= 24 (backports) installed, its lavapipe ICD present, and the loader.
  local v
  v=$(dpkg-query -W -f='${Status} ${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [[ "$v" == "install ok installed "* ]] || return 1
  v=${v##* }; v=${v#*:}
  [ "${v%%.*}" -ge 24 ] 2>/dev/null || return 1
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || return 1
  dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'install ok installed'
}

start=$(date +%s)
if lavapipe_ok; then
  say "lavapipe already installed ($(dpkg-query -W -f='${Version}' mesa-vulkan-drivers))"
else
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    say "adding bookworm-backports to apt's sources"
    $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  say "installing Mesa's lavapipe (bookworm-backports) and the Vulkan loader"
  apt_quiet -t bookworm-backports mesa-vulkan-drivers libvulkan1
  lavapipe_ok || { say "mesa-vulkan-drivers >= 24 did not install" >&2; exit 1; }
  say "installed mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) in $(( $(date +%s) - start )) s"
fi

# Dawn's view: the adapter the webgpu tests will use. Skipped when node_modules has no `webgpu` (optional dep).
if [ -d node_modules/webgpu ] && command -v node >/dev/null; then
  if ! out=$(node --input-type=module -e '
    import { create, globals } from "webgpu";
    Object.assign(globalThis, globals);
    const a = await create([]).requestAdapter();
    if (!a) { console.log("no adapter"); process.exit(1); }
    const i = a.info ?? {};
    console.log([i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(" "));
    process.exit(0);
  ' 2>/dev/null); then
    say "Dawn found no adapter (${out:-node failed}); check VK_DRIVER_FILES / VK_ICD_FILENAMES" >&2
    exit 1
  fi
  say "Dawn adapter: $out"
else
  say "node_modules/webgpu absent: installed the driver, did not check Dawn (run npm ci first to check)"
fi
