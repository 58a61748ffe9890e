#!/usr/bin/env bash
# qkv against the same model and training step in PyTorch eager mode (bench/reference.py, run by
# Debian's python3-torch: the same ATen kernels), on the same config. Runs alternate so both see
# the same machine state; prints each figure and the ratios.
#   scripts/bench.sh [CONFIG] [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
config="${1:-configs/shakespeare_char.yaml}"
rounds="${2:-3}"
qkv="${QKV_BIN:-$root/build/qkv}"
python="${QKV_PYTHON:-/usr/bin/python3}"
threads="$(nproc)"

if ! "$python" -c 'import torch' 2> /dev/null; then
  echo "bench: $python has no torch; install python3-torch" >&2
  exit 1
fi

field() { "$python" -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

qkv_ms=() ref_ms=() ref1_ms=()
for round in $(seq "$rounds"); do
  q="$("$qkv" bench "$config" --json --steps 30 2> /dev/null)"
  r="$("$python" bench/reference.py bench "$config" --steps 30 --threads "$threads")"
  # PyTorch also with one intra-op thread (OpenBLAS keeps every core), qkv's own split: two
  # spinning pools of $threads threads each slow the eager step as they slowed qkv's.
  r1="$("$python" bench/reference.py bench "$config" --steps 30 --threads 1)"
  qkv_ms+=("$(echo "$q" | field step_ms)")
  ref_ms+=("$(echo "$r" | field ms_per_step)")
  ref1_ms+=("$(echo "$r1" | field ms_per_step)")
  printf 'round %s: qkv %.2f ms/step | PyTorch eager %.2f ms/step (%s threads), %.2f (1 thread)\n' \
    "$round" "${qkv_ms[-1]}" "${ref_ms[-1]}" "$threads" "${ref1_ms[-1]}"
done

echo "$q" | "$python" -c '
import json, sys
r = json.load(sys.stdin)
print("qkv (last round): MFU %.1f%% of %.0f GFLOP/s fp32; generation %.0f tok/s cached vs %.0f"
      " uncached; eval %.0f tok/s; peak RSS %.0f MB" % (
          100 * r["mfu"], r["matmul_fp32_gflops"], r["generate_cached_tokens_per_s"],
          r["generate_uncached_tokens_per_s"], r["eval_tokens_per_s"], r["peak_rss_mb"]))
print("breakdown ms:", ", ".join("%s %.2f" % kv for kv in r["breakdown_ms"].items()))'

"$python" - "${qkv_ms[*]}" "${ref_ms[*]}" "${ref1_ms[*]}" "$threads" << 'PY'
import statistics, sys
q, r, r1 = ([float(x) for x in a.split()] for a in sys.argv[1:4])
mq, mr, mr1 = statistics.median(q), statistics.median(r), statistics.median(r1)
print("median: qkv %.2f ms/step; PyTorch eager %.2f ms/step with %s threads (qkv %.2fx its tokens/s),"
      " %.2f with 1 thread (qkv %.2fx)" % (mq, mr, sys.argv[4], mr / mq, mr1, mr1 / mq))
PY
