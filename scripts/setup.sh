#!/usr/bin/env bash
# Installs qkv's system dependencies from Debian's archive (idempotent), makes OpenBLAS's OpenMP
# build the BLAS that LibTorch uses, then configures and builds into build/. Run it as root, or as
# a user with sudo: it calls sudo for the package and BLAS steps only, so build/ belongs to the user.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QKV_BUILD_DIR:-$root/build}"

packages=(
  g++ cmake ninja-build pkg-config git ca-certificates curl
  ccache                   # compiled objects kept outside the clone: rebuilds compile what changed
  libtorch-dev             # LibTorch 1.13 (CPU)
  libopenblas0-openmp      # fast BLAS (the reference one is ~30x slower) on LibTorch's OpenMP pool
  libopenblas-dev
  libsentencepiece-dev     # tokenizer (loaded as a plugin: see src/plugin/)
  libpcre2-dev             # GPT-2's byte-level BPE: its pattern's Unicode classes
  libspdlog-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev
  libgloo-dev              # Gloo headers: data-parallel training on CPU (c10d ProcessGroupGloo)
  iproute2                 # ip netns: the two-host data-parallel test
  libcairo2-dev            # draws heatmaps and charts (PNG, SVG)
  fonts-dejavu-core        # the plots' font; has the symbols that label space and newline tokens
  libgtest-dev libgmock-dev
  libcpp-httplib-dev       # qkv serve's HTTP server
  chromium                 # the report test opens report.html headless and screenshots it
  chromium-driver python3-selenium   # the serve test drives the explorer page in a browser
  python3-torch            # PyTorch 1.13, the independent reference for numerics checks
)

if ! command -v apt-get > /dev/null; then
  echo "setup: apt-get not found. qkv's setup targets Debian 12; elsewhere install LibTorch," \
       "SentencePiece, spdlog, yaml-cpp, CLI11, nlohmann-json, GoogleTest, OpenBLAS and CMake" \
       "yourself, then: cmake -S . -B build -G Ninja && cmake --build build" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo > /dev/null; then
  sudo=(sudo)
else
  echo "setup: installing packages needs root; run as root or install sudo" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
else
  echo "setup: all packages present"
fi

# LibTorch links libblas.so.3 and qkv libopenblas.so.0; point both at the OpenMP build of
# OpenBLAS. It runs its threads in the same OpenMP pool as LibTorch, so both get every core in
# turn: the pthread build keeps a second, spinning pool, and beside it LibTorch had to run on one
# thread (2-core Xeon: small config 46.5 -> 40.7 ms/step, large config 15.0 -> 9.8 s/step).
arch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2> /dev/null || echo x86_64-linux-gnu)"
openblas="/usr/lib/$arch/openblas-openmp"
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  if [ -e "$openblas/$lib" ]; then
    "${sudo[@]}" update-alternatives --quiet --set "$lib-$arch" "$openblas/$lib"
  fi
done

cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build_dir"
echo "setup: built $build_dir/qkv"
