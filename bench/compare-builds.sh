#!/usr/bin/env bash
# Same numbers as another commit? Trains configs/tiny.json 6 steps on wasm with each build and compares the weights
# by name, then colorizes the fixtures with each build on copies of one model (ONNX Runtime and tfjs; plain, with
# --style, and 700-pixel copies at --resolution full --tile 288, which tile) and compares the files byte for byte.
#
# Usage, from the repository root after `npm run build`:  bash bench/compare-builds.sh COMMIT
# (the other commit is checked out in a temporary worktree sharing this node_modules, and built there).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bash bench/compare-builds.sh COMMIT" >&2; exit 2; }
NEW=$(pwd); T=$(mktemp -d); BASE=$T/base
trap 'git -C "$NEW" worktree remove --force "$BASE" >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
git worktree add -q --detach "$BASE" "$1"
ln -s "$NEW/node_modules" "$BASE/node_modules"
(cd "$BASE" && npx tsc -p tsconfig.json >/dev/null)
mkdir -p "$T/big"
for f in fixtures/images/renewable/*.jpg; do node -e "require('sharp')(process.argv[1]).resize(700).toFile(process.argv[2])" "$f" "$T/big/$(basename "$f")"; done
train() { node "$1/dist/src/cli.js" train --shards "$NEW/fixtures/shards/data-*.tar" --config "$NEW/configs/tiny.json" --steps 6 --out "$2" --quiet --backend wasm --processes 0 >/dev/null; }
train "$BASE" "$T/run-base"; train "$NEW" "$T/run-new"
node --input-type=module -e "
import { readModelFiles } from '$NEW/dist/src/network/model-files.js';
const [a, b] = [await readModelFiles('$T/run-base/model'), await readModelFiles('$T/run-new/model')];
const other = new Map(b.weights.map((w) => [w.name, w]));
const bytes = (w) => Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength);
const same = a.weights.filter((w) => other.has(w.name) && bytes(w).equals(bytes(other.get(w.name)))).length;
console.log(JSON.stringify({ trained_weights: { identical: same, of: a.weights.length } }));"
step=$(ls "$T/run-base/checkpoints" | tail -1)
for side in base new; do cp -r "$T/run-base/checkpoints/$step" "$T/model-$side"; done
style="$NEW/fixtures/images/renewable/$(ls "$NEW/fixtures/images/renewable" | head -1)"
for side in base new; do
  B=$BASE; [ $side = new ] && B=$NEW
  for e in onnx tfjs; do
    for v in plain style tiled; do
      case $v in plain) a=(--in "$NEW/fixtures/images");; style) a=(--in "$NEW/fixtures/images" --style "$style");;
                  tiled) a=(--in "$T/big" --resolution full --tile 288 --batch 3);; esac
      node "$B/dist/src/cli.js" colorize --model "$T/model-$side" --out "$T/out-$side/$e-$v" --engine $e --backend wasm --quiet "${a[@]}" >/dev/null
    done
  done
done
if diff -rq "$T/out-base" "$T/out-new" >/dev/null; then
  echo "{\"colorize_files\": {\"identical\": $(find "$T/out-new" -type f | wc -l)}}"
else
  diff -rq "$T/out-base" "$T/out-new" >&2; exit 1
fi
