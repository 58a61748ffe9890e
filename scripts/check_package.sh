#!/usr/bin/env bash
# qkv as a CMake package: installs the built tree (scripts/setup.sh's build/) into a temporary
# prefix, builds examples/embed_qkv against it with find_package(qkv), trains a tiny model with the
# installed program and has the example generate from it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
prefix="$scratch/prefix"

cmake --install "$build" --prefix "$prefix" > "$scratch/install.log"
for f in bin/qkv lib/qkv/libqkv_sentencepiece.so lib/libqkv_core.a lib/libqkv_engine.a lib/libqkv_model.a lib/libqkv_base.a \
  include/qkv/train/checkpoint.h lib/cmake/qkv/qkvConfig.cmake lib/cmake/qkv/qkvConfigVersion.cmake; do
  [ -e "$prefix/$f" ] || { echo "check_package: $f was not installed" >&2; exit 1; }
done
cmake -S "$root/examples/embed_qkv" -B "$scratch/example" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" > "$scratch/configure.log" 2>&1 ||
  { cat "$scratch/configure.log" >&2; exit 1; }
cmake --build "$scratch/example" > "$scratch/build.log" 2>&1 || { tail -30 "$scratch/build.log" >&2; exit 1; }

for i in $(seq 300); do echo "The king speaks of the river bank, line $i."; done > "$scratch/corpus.txt"
"$prefix/bin/qkv" train "$root/configs/tiny.yaml" --set "data.files=$scratch/corpus.txt" \
  --set "data.dir=$scratch/data" --set "train.out_dir=$scratch/run" > "$scratch/train.log" 2>&1 ||
  { tail -5 "$scratch/train.log" >&2; exit 1; }
out="$("$scratch/example/embed_qkv" "$scratch/run" "The king" 30 2> "$scratch/example.log")" ||
  { cat "$scratch/example.log" >&2; exit 1; }
[[ "$out" == "The king"?* ]] || { echo "check_package: embed_qkv printed '$out'" >&2; exit 1; }
grep -q "30 tokens from" "$scratch/example.log" || { cat "$scratch/example.log" >&2; exit 1; }
echo "check_package: installed to a prefix; examples/embed_qkv built with find_package(qkv) and generated: $(head -c 60 <<< "$out" | tr '\n' ' ')"
