#!/usr/bin/env bash
# Builds qkv against a current LibTorch 2.x, the one inside PyTorch's wheel (a CUDA build: its
# LibTorch links on a machine without a GPU, and qkv's CUDA code paths compile and link with it),
# then runs the whole suite on the CPU. Debian's LibTorch 1.13 build (scripts/setup.sh) is
# untouched: this one lives in build-libtorch2/ with its own virtual environment.
#   QKV_TORCH_VERSION   the torch wheel to use (default below)
#   QKV_LIBTORCH2_DIR   where the environment and the build go (default build-libtorch2/)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${QKV_LIBTORCH2_DIR:-$root/build-libtorch2}"
version="${QKV_TORCH_VERSION:-2.11.0}"

# The same environment the tests use (torch, transformers): one download, one install.
QKV_LIBTORCH2_DIR="$dir" QKV_TORCH_VERSION="$version" bash "$root/scripts/setup_test_python.sh"

# The wheel's torch/ directory as the prefix: CMake then finds its TorchConfig.cmake and its
# lib/ before Debian's libtorch.so in /usr/lib.
torch_dir="$("$dir/venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' \
  2> /dev/null)"
cmake -S "$root" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_dir" > "$dir/configure.log" 2>&1 ||
  { cat "$dir/configure.log" >&2; exit 1; }
# The CUDA sources, not their CPU-only stand-ins, are what this build must compile.
grep -q "src/train/cuda_graph_step.cpp.o:" "$dir/build/build.ninja" ||
  { echo "check_libtorch2: the wheel's LibTorch is not a CUDA build" >&2; exit 1; }
# So are c10d's NCCL and Gloo process groups (data-parallel training on GPUs and CPUs).
for source in nccl_group gloo_group; do
  grep -q "src/distributed/$source.cpp.o:" "$dir/build/build.ninja" ||
    { echo "check_libtorch2: $source.cpp is not in the build (nccl.h or Gloo headers?)" >&2; exit 1; }
done
cmake --build "$dir/build"
ctest --test-dir "$dir/build" --output-on-failure -j "$(nproc)"
# torchrun of the same PyTorch launches qkv as its workers: its agent serves the rendezvous store.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for i in $(seq 300); do echo "The king speaks of the river bank, line $i."; done > "$scratch/corpus.txt"
"$dir/venv/bin/torchrun" --no-python --nproc-per-node 2 "$dir/build/qkv" train \
  "$root/configs/tiny.yaml" --set "data.files=$scratch/corpus.txt" --set "data.dir=$scratch/data" \
  --set "train.out_dir=$scratch/run" --set train.max_steps=5 --set runtime.timeout_s=60 \
  > "$scratch/torchrun.log" 2>&1 || { tail -20 "$scratch/torchrun.log" >&2; exit 1; }
grep -q "rank 0 info 2 ranks (gloo)" "$scratch/torchrun.log" ||
  { echo "check_libtorch2: torchrun did not run 2 ranks" >&2; exit 1; }
echo "check_libtorch2: LibTorch $version (CUDA build, NCCL and Gloo process groups) compiled, linked and passed on the CPU; torchrun launched 2 ranks"
