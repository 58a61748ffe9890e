#!/usr/bin/env bash
# qkv against the same model and training step in PyTorch eager mode (bench/reference.py, run by
# Debian's python3-torch: the same ATen kernels), on the same config and thread count. Runs
# alternate so that both see the same machine state; prints each figure and the ratio.
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

qkv_ms=() ref_ms=()
for round in $(seq "$rounds"); do
  q="$("$qkv" bench "$config" --json --steps 30 2> /dev/null)"
  r="$("$python" bench/reference.py bench "$config" --steps 30 --threads "$threads")"
  qkv_ms+=("$(echo "$q" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["step_ms"])')")
  ref_ms+=("$(echo "$r" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["ms_per_step"])')")
  echo "round $round: qkv ${qkv_ms[-1]} ms/step, PyTorch eager ${ref_ms[-1]} ms/step"
done
echo "$q" | "$python" -c '
import json, sys
r = json.load(sys.stdin)
b = r["breakdown_ms"]
print(f"qkv (last round): MFU {100*r[\"mfu\"]:.1f}% of {r[\"matmul_fp32_gflops\"]:.0f} GFLOP/s fp32;"
      f" generation {r[\"generate_cached_tokens_per_s\"]:.0f} tok/s cached vs"
      f" {r[\"generate_uncached_tokens_per_s\"]:.0f} uncached; eval {r[\"eval_tokens_per_s\"]:.0f} tok/s;"
      f" peak RSS {r[\"peak_rss_mb\"]:.0f} MB")
print("breakdown ms:", ", ".join(f"{k} {v:.2f}" for k, v in b.items()))'
"$python" - "${qkv_ms[*]}" "${ref_ms[*]}" <<'PY'
import statistics, sys
q = [float(x) for x in sys.argv[1].split()]
r = [float(x) for x in sys.argv[2].split()]
mq, mr = statistics.median(q), statistics.median(r)
print(f"median: qkv {mq:.2f} ms/step, PyTorch eager {mr:.2f} ms/step: qkv is {mr / mq:.2f}x the tokens/s")
PY
