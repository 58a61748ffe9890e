#!/usr/bin/env bash
# Builds qkv with AddressSanitizer and UndefinedBehaviorSanitizer into build-asan/ and runs the
# whole suite there. The SentencePiece tests skip, saying why: the plugin is loaded with dlmopen,
# which ASan cannot follow. Needs what scripts/setup.sh installs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QKV_ASAN_BUILD_DIR:-$root/build-asan}"
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS="$flags" -DCMAKE_MODULE_LINKER_FLAGS="$flags" > /dev/null
cmake --build "$build_dir"

# LibTorch and OpenBLAS are not instrumented: leaks of their static state and container
# annotations they lack are not qkv's findings. Everything else stops the run.
export ASAN_OPTIONS="detect_leaks=0:detect_container_overflow=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
