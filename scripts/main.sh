#!/usr/bin/env bash
# The main job on the default config: get the corpus, prepare it, train, and say where the
# checkpoint is. Assumes scripts/setup.sh has built build/qkv.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
config="${1:-configs/shakespeare_char.yaml}"
qkv="${QKV_BIN:-$root/build/qkv}"
run_dir="$(grep -E '^\s*out_dir:' "$config" | head -1 | awk '{print $2}')"

scripts/get_data.sh
"$qkv" prepare "$config"
if [ -f "$run_dir/last.pt" ]; then
  echo "main: $run_dir already holds a trained run; remove it to train again"
else
  "$qkv" train "$config" --no-prepare
fi
echo "main: checkpoint: $run_dir/best.pt"
