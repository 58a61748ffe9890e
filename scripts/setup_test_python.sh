#!/usr/bin/env bash
# The Python environment the test suite checks qkv against: PyTorch 2.x (its LibTorch also builds
# qkv in scripts/check_libtorch2.sh) and Hugging Face transformers, tokenizers and safetensors,
# which load `qkv export --format hf` in tests/export_test.cpp, and the openai client, which calls
# `qkv serve` in tests/serve_test.cpp. Not part of the user's set-up:
# qkv itself needs none of it. pip caches the downloads between runs.
#   QKV_LIBTORCH2_DIR   where the environment goes (default build-libtorch2/, venv/ inside)
#   QKV_TORCH_VERSION   the torch wheel (default 2.11.0)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${QKV_LIBTORCH2_DIR:-$root/build-libtorch2}"
version="${QKV_TORCH_VERSION:-2.11.0}"
python="$(command -v python3)"
# The releases the export was checked with; newer ones are tried by changing these.
hf_packages=(transformers==5.23.0 tokenizers==0.23.3 safetensors==0.8.0 sentencepiece==0.2.3
  protobuf==7.36.2 openai==3.51.0)

mkdir -p "$dir"
if ! "$python" -c 'import venv, ensurepip' 2> /dev/null; then
  echo "setup_test_python: $python cannot make a virtual environment (install python3-venv)" >&2
  exit 1
fi
[ -x "$dir/venv/bin/python" ] || "$python" -m venv "$dir/venv"
echo "setup_test_python: torch==$version ${hf_packages[*]} into $dir/venv"
"$dir/venv/bin/pip" install --quiet --disable-pip-version-check "torch==$version" "${hf_packages[@]}"
"$dir/venv/bin/python" -c 'import torch, transformers, tokenizers, safetensors, openai' 2> /dev/null ||
  { echo "setup_test_python: the packages do not import" >&2; exit 1; }
