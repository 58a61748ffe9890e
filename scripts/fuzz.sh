#!/usr/bin/env bash
# Fuzzes what qkv parses from untrusted bytes with libFuzzer (clang, AddressSanitizer and UBSan):
# the config loader, a tokenizer's serialized form, checkpoint metadata, token files with their
# meta.json, metrics.jsonl, safetensors files and qkv serve's completion requests. Each target starts from its committed seeds in fuzz/corpus/ and
# runs for SECONDS (default 60); what it adds goes to build-fuzz/corpus/, never the seeds.
# Prints executions per second per target and exits non-zero on a finding (the crashing input is
# left in build-fuzz/findings/).
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: config tokenizer checkpoint_meta
#                                                       token_file metrics safetensors
#                                                       completion_request
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${QKV_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${1:-60}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(config tokenizer checkpoint_meta token_file metrics safetensors
  completion_request)

if ! command -v clang++ > /dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a > /dev/null 2>&1; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "fuzz: installing clang and libFuzzer"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    clang libclang-rt-dev > /dev/null
fi

CXX=clang++ cmake -S "$root/fuzz" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build_dir"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
mkdir -p "$build_dir/findings"
for t in "${targets[@]}"; do
  corpus="$build_dir/corpus/$t"
  mkdir -p "$corpus"
  log="$build_dir/$t.log"
  if "$build_dir/fuzz_$t" "$corpus" "$root/fuzz/corpus/$t" -max_total_time="$seconds" \
    -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build_dir/findings/$t-" > "$log" 2>&1; then
    result="no findings"
  else
    result="FINDING (see $log and $build_dir/findings/)"
    status=1
  fi
  runs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)"
  rate="$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)"
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)"
  echo "fuzz $t: ${runs:-?} executions in ${seconds} s (${rate:-?}/s), ${cov:-cov: ?}, $result"
done
exit "$status"
