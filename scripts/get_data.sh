#!/usr/bin/env bash
# Puts tinyshakespeare.txt at data/tinyshakespeare.txt. Looks first in a local directory
# (QKV_DATA_DIR, default ../shared/data beside the checkout) and links it from there; otherwise
# downloads it from its canonical URL. Either way the sha256 is checked. Nothing is committed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name=tinyshakespeare.txt
url=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
sha=86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed
dest="$root/data/$name"
mkdir -p "$root/data"

check() { echo "$sha  $1" | sha256sum --check --status; }

if [ -e "$dest" ] && check "$dest"; then
  echo "get_data: $dest is present and its sha256 matches"
  exit 0
fi

local_dir="${QKV_DATA_DIR:-$root/../shared/data}"
if [ -f "$local_dir/$name" ]; then
  if ! check "$local_dir/$name"; then
    echo "get_data: $local_dir/$name does not have the expected sha256 $sha" >&2
    exit 1
  fi
  ln -sfn "$(cd "$local_dir" && pwd)/$name" "$dest"
  echo "get_data: linked $dest -> $local_dir/$name"
  exit 0
fi

echo "get_data: $name not found in $local_dir; downloading $url"
tmp="$dest.download"
if command -v curl > /dev/null; then
  curl -fsSL --retry 3 -o "$tmp" "$url"
elif command -v wget > /dev/null; then
  wget -q -O "$tmp" "$url"
else
  echo "get_data: neither curl nor wget is installed" >&2
  exit 1
fi
if ! check "$tmp"; then
  rm -f "$tmp"
  echo "get_data: the download from $url does not have the expected sha256 $sha" >&2
  exit 1
fi
mv "$tmp" "$dest"
echo "get_data: downloaded $dest"
