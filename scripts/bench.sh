#!/usr/bin/env bash
# qkv against every peer installed here, on the same config and training step, in alternating
# rounds so that all see the same machine state; prints each figure, the medians and the ratios.
# Peers (bench/reference.py: the same model and step in PyTorch):
#   - Debian's PyTorch 1.13 (python3-torch), eager, with every intra-op thread and with one
#     (with OpenBLAS's OpenMP build, as scripts/setup.sh installs it, BLAS follows that count);
#   - a PyTorch 2.x (QKV_TORCH2_PYTHON, default build-libtorch2/venv from
#     scripts/setup_test_python.sh), eager with both thread settings, and with torch.compile.
# A peer that is not installed is skipped, and the script says so.
# QKV_BASELINE_BIN names a second qkv binary (say, one built before a change) to run as one more
# entry, so that a before/after comparison comes from the same alternating rounds.
#   scripts/bench.sh [CONFIG] [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
config="${1:-configs/shakespeare_char.yaml}"
rounds="${2:-3}"
steps="${QKV_BENCH_STEPS:-30}"
# Unmeasured steps before those (qkv bench's and reference.py's own defaults when unset); the
# large config, at 10-40 s a step, needs QKV_BENCH_STEPS=2 QKV_BENCH_WARMUP=1 to fit in minutes.
warmup="${QKV_BENCH_WARMUP:+--warmup $QKV_BENCH_WARMUP}"
qkv="${QKV_BIN:-$root/build/qkv}"
python="${QKV_PYTHON:-/usr/bin/python3}"
torch2="${QKV_TORCH2_PYTHON:-$root/build-libtorch2/venv/bin/python}"
threads="$(nproc)"

# qkv starts itself again with OPENBLAS_CORETYPE when OpenBLAS does not know this CPU and falls
# back to its slowest kernels (Prescott: 65 GFLOP/s here, Cooperlake: 300); Debian's PyTorch,
# which loads the same OpenBLAS, gets the same kernels, or the comparison is of kernels, not code.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  core="$("$qkv" --version | sed -n 's/^BLAS OpenBLAS .* \([A-Za-z0-9]*\) MAX_THREADS.*/\1/p')"
  [ -n "$core" ] && export OPENBLAS_CORETYPE="$core"
fi

names=() commands=()
add_peer() { names+=("$1"); commands+=("$2"); }
add_peer "qkv" "'$qkv' bench '$config' --json --steps $steps $warmup 2> /dev/null"
if [ -n "${QKV_BASELINE_BIN:-}" ]; then
  [ -x "$QKV_BASELINE_BIN" ] || { echo "bench: QKV_BASELINE_BIN=$QKV_BASELINE_BIN is not an executable" >&2; exit 1; }
  add_peer "qkv baseline" "'$QKV_BASELINE_BIN' bench '$config' --json --steps $steps $warmup 2> /dev/null"
fi
# qkv built against the PyTorch 2.x wheel's LibTorch (scripts/check_libtorch2.sh), when built.
qkv2="${QKV2_BIN:-$root/build-libtorch2/build/qkv}"
if [ -x "$qkv2" ]; then
  add_peer "qkv on LibTorch $("$qkv2" --version | sed -n 's/^LibTorch //p')" \
    "'$qkv2' bench '$config' --json --steps $steps $warmup 2> /dev/null"
else
  echo "bench: skipped qkv on LibTorch 2.x: no $qkv2 (scripts/check_libtorch2.sh builds it)"
fi
if "$python" -c 'import torch' 2> /dev/null; then
  v="$("$python" -c 'import torch; print(torch.__version__)')"
  for t in "$threads" 1; do
    add_peer "PyTorch $v eager, $t thread(s)" \
      "'$python' bench/reference.py bench '$config' --steps $steps $warmup --threads $t"
  done
else
  echo "bench: skipped Debian's PyTorch: $python has no torch (install python3-torch)"
fi
if [ -x "$torch2" ] && "$torch2" -c 'import torch; assert hasattr(torch, "compile")' 2> /dev/null; then
  v="$("$torch2" -c 'import torch; print(torch.__version__)' 2> /dev/null)"
  for t in "$threads" 1; do
    add_peer "PyTorch $v eager, $t thread(s)" \
      "'$torch2' bench/reference.py bench '$config' --steps $steps $warmup --threads $t"
    add_peer "PyTorch $v compile, $t thread(s)" \
      "'$torch2' bench/reference.py bench '$config' --steps $steps $warmup --threads $t --compile"
  done
else
  echo "bench: skipped PyTorch 2.x: no $torch2 (scripts/setup_test_python.sh makes it)"
fi
echo "bench: skipped nanoGPT: not installed here (its figures are in docs/gpu.md, measured apart)"

echo "bench: $(lscpu | sed -n 's/^Model name: *//p'), $threads cores; $config, $rounds rounds of $steps steps; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    out="$(bash -c "${commands[$i]}" 2> /dev/null)" || { echo "round $round: ${names[$i]} failed"; continue; }
    ms="$(echo "$out" | "$python" -c "import json,sys; r=json.load(sys.stdin); print(r.get('step_ms', r.get('ms_per_step')))")"
    printf 'round %s: %-40s %8.2f ms/step\n' "$round" "${names[$i]}" "$ms"
    printf '%s\t%s\n' "${names[$i]}" "$ms" >> "$results"
    [ "$i" -eq 0 ] && last_qkv="$out"
  done
done

echo "${last_qkv:-{\}}" | "$python" -c '
import json, sys
r = json.load(sys.stdin)
if r:
    print("qkv (last round): MFU %.1f%% of %.0f GFLOP/s fp32; generation %.0f tok/s cached vs %.0f"
          " uncached; eval %.0f tok/s; peak RSS %.0f MB" % (
              100 * r["mfu"], r["matmul_fp32_gflops"], r["generate_cached_tokens_per_s"],
              r["generate_uncached_tokens_per_s"], r["eval_tokens_per_s"], r["peak_rss_mb"]))
    print("breakdown ms:", ", ".join("%s %.2f" % kv for kv in r["breakdown_ms"].items()))'

"$python" - "$results" << 'PY'
import collections, statistics, sys
times = collections.OrderedDict()
for line in open(sys.argv[1]):
    name, ms = line.rstrip("\n").split("\t")
    times.setdefault(name, []).append(float(ms))
if "qkv" not in times:
    sys.exit("bench: qkv did not run")
q = statistics.median(times["qkv"])
print("median ms/step, and qkv's speed-up over each (their ms / qkv's ms):")
for name, t in times.items():
    m = statistics.median(t)
    print("  %-40s %8.2f   %s" % (name, m, "" if name == "qkv" else "%.2fx" % (m / q)))
peers = {n: statistics.median(t) for n, t in times.items() if not n.startswith("qkv")}
if peers:
    best = min(peers, key=peers.get)
    for name, t in times.items():
        if name.startswith("qkv"):
            m = statistics.median(t)
            print("best peer: %s, %.2f ms/step: %s %.2fx" % (best, peers[best], name, peers[best] / m))
PY
