#!/usr/bin/env bash
# Data-parallel training measured: the step time of 1 rank against 2 ranks (same batch per rank),
# the gradient all-reduce's time, bytes and bandwidth over loopback, with the all-reduce after
# backward and overlapped with it, and (as root, where `ip netns` works) across two network
# namespaces joined by a veth pair shaped to 10 and 1 Gbit/s.
#   scripts/bench_data_parallel.sh [STEPS] [CONFIG...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
steps="${1:-20}"
shift || true
configs=("$@")
[ "${#configs[@]}" -gt 0 ] || configs=(configs/shakespeare_char.yaml configs/shakespeare_char_large.yaml)
qkv="${QKV_BIN:-$root/build/qkv}"
work="$(mktemp -d)"
ns0="qkvb0_$$" ns1="qkvb1_$$"
cleanup() {
  ip netns del "$ns0" 2> /dev/null || true
  ip netns del "$ns1" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"

# The all-reduce alone (qkv bench --allreduce: GradientReducer::average after a barrier, so
# without the wait for a slower rank that the training figure includes).
allreduce_line() {
  "$qkv" bench "$1" --allreduce --repeats 10 --nproc 2 --set runtime.threads=1 2> /dev/null
}

# Whatever the run's figures are, from rank 0's log.
figures() {
  local log="$1" step ar mb
  step="$(grep -oP 'median \K[0-9.]+(?= ms/step\))' "$log" | tail -1)"
  ar="$(grep -oP 'gradient all-reduce \K[0-9.]+' "$log" | tail -1 || true)"
  mb="$(grep -oP 'ms/step median, \K[0-9.]+(?= MB)' "$log" | tail -1 || true)"
  if [ -n "$ar" ]; then
    awk -v s="$step" -v a="$ar" -v m="$mb" 'BEGIN { printf "%8.1f ms/step | all-reduce %7.1f ms/step, %.2f MB, %.2f GB/s\n", s, a, m, m / a }'
  else
    printf '%8.1f ms/step\n' "$step"
  fi
}

netns_ok=false
if [ "$(id -u)" -eq 0 ] && ip netns add "$ns0" 2> /dev/null && ip netns add "$ns1"; then
  ip link add qvb0 netns "$ns0" type veth peer name qvb1 netns "$ns1"
  ip -n "$ns0" addr add 10.232.0.1/24 dev qvb0
  ip -n "$ns1" addr add 10.232.0.2/24 dev qvb1
  for n in "$ns0" "$ns1"; do ip -n "$n" link set lo up; done
  ip -n "$ns0" link set qvb0 up
  ip -n "$ns1" link set qvb1 up
  netns_ok=true
fi

# shape RATE BURST: both ends of the veth pair, with netem where the kernel has it, else a token bucket
# (this project's kernel, 6.18, has no sch_netem: "Specified qdisc kind is unknown").
shape() {
  local ns dev
  for pair in "$ns0 qvb0" "$ns1 qvb1"; do
    read -r ns dev <<< "$pair"
    ip netns exec "$ns" tc qdisc replace dev "$dev" root netem rate "$1" 2> /dev/null ||
      ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "$1" burst "$2" latency 100ms
  done
  qdisc="$(ip netns exec "$ns0" tc qdisc show dev qvb0 | awk '{print $2}')"
}

for config in "${configs[@]}"; do
  "$qkv" prepare "$config" 2> /dev/null
  common=(--no-prepare --set "train.max_steps=$steps" --set eval.batches=1 --set checkpoint.every=0
    --set checkpoint.report=false)
  echo "== $config, $steps steps"
  "$qkv" train "$config" "${common[@]}" --set "train.out_dir=$work/one" 2> "$work/log" ||
    { tail -3 "$work/log"; exit 1; }
  printf '1 rank, %s threads          ' "$(nproc)"; figures "$work/log"
  printf '2 ranks loopback, alone:      '; allreduce_line "$config"
  for overlap in false true; do
    "$qkv" train "$config" "${common[@]}" --set "train.out_dir=$work/two_$overlap" \
      --set runtime.threads=1 --set "runtime.overlap_allreduce=$overlap" --nproc 2 2> "$work/log" ||
      { tail -3 "$work/log"; exit 1; }
    printf '2 ranks loopback, overlap %-5s' "$overlap"; figures "$work/log"
  done
  if $netns_ok; then
    # A token bucket lets BURST bytes through at line rate: about 1 ms worth of the rate.
    for shaping in "10gbit 1250kb" "1gbit 125kb"; do
      read -r rate burst <<< "$shaping"
      shape "$rate" "$burst"
      port=$((29533 + RANDOM % 1000))
      launch() {
        ip netns exec "$1" env RANK="$2" WORLD_SIZE=2 MASTER_ADDR=10.232.0.1 MASTER_PORT=$port \
          "$qkv" train "$config" "${common[@]}" --set "train.out_dir=$work/veth_$rate" \
          --set runtime.threads=1
      }
      launch "$ns1" 1 > /dev/null 2>&1 &
      launch "$ns0" 0 > /dev/null 2> "$work/log" || { tail -3 "$work/log"; exit 1; }
      wait
      bench_in() {
        ip netns exec "$1" env RANK="$2" WORLD_SIZE=2 MASTER_ADDR=10.232.0.1 \
          MASTER_PORT=$((port + 1)) "$qkv" bench "$config" --allreduce --repeats 10 \
          --set runtime.threads=1
      }
      bench_in "$ns1" 1 > /dev/null 2>&1 &
      printf '2 ranks veth %-5s %-7s alone: ' "$qdisc" "$rate"
      bench_in "$ns0" 0 2> /dev/null
      wait
      printf '2 ranks veth %-5s %-7s   ' "$qdisc" "$rate"; figures "$work/log"
    done
  else
    echo "2 ranks over veth: skipped (needs root and ip netns)"
  fi
done
