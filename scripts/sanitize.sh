#!/usr/bin/env bash
# Builds qkv with AddressSanitizer and UndefinedBehaviorSanitizer into build-asan/ and runs the
# whole suite there. The SentencePiece tests skip, saying why: the plugin is loaded with dlmopen,
# which ASan cannot follow. Needs what scripts/setup.sh installs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QKV_ASAN_BUILD_DIR:-$root/build-asan}"
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

# -O1 and line tables only (-g1), as the sanitizers' own docs suggest: the reports keep their file
# and line, and a TU compiles in half the time of RelWithDebInfo's -O2 -g (reliability_test.cpp:
# 80 s -> 40 s, 2-core Xeon family 6 model 207), the build's largest cost in CI.
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_FLAGS="$flags -O1 -g1 -DNDEBUG" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS="$flags" -DCMAKE_MODULE_LINKER_FLAGS="$flags" > /dev/null
cmake --build "$build_dir"

# LibTorch and OpenBLAS are not instrumented: leaks of their static state and container
# annotations they lack are not qkv's findings. Everything else stops the run.
export ASAN_OPTIONS="detect_leaks=0:detect_container_overflow=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
