#!/usr/bin/env bash
# Every GPU measurement of the large config in one go, for one lease of a GPU machine: qkv bench
# (step, MFU against the measured bf16 ceiling, generation at batch 1 and 32, evaluation), the
# large config's whole run (5000 steps with its evaluations and checkpoints), `qkv eval`, and, when
# NANOGPT_DIR names a nanoGPT checkout with data/shakespeare_char prepared, nanoGPT's train.py on
# the same GPU (torch.compile) for its step time. Figures and logs go to $OUT.
#   QKV_BIN      the qkv binary (default build-libtorch2/build/qkv)
#   QKV_TEXT     tinyshakespeare.txt (default ../shared/data/tinyshakespeare.txt)
#   NANOGPT_DIR  a nanoGPT checkout (optional); NANOGPT_STEPS its steps (default 600)
#   QKV_SKIP     space-separated stages to skip: bench train eval nanogpt
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$root/gpu-out}"
qkv="${QKV_BIN:-$root/build-libtorch2/build/qkv}"
text="${QKV_TEXT:-$root/../shared/data/tinyshakespeare.txt}"
skip=" ${QKV_SKIP:-} "
mkdir -p "$out"
work="$(mktemp -d)"
config="$root/configs/shakespeare_char_large.yaml"
common=(--set "data.files=$text" --set "data.dir=$work/data" --set runtime.dtype=bf16)

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  lscpu | grep "Model name"; } | tee "$out/machine.txt"

if [[ "$skip" != *" bench "* ]]; then
  echo "== qkv bench"
  timeout 180 "$qkv" bench "$config" --set runtime.dtype=bf16 --steps 100 --warmup 10 \
    2>&1 | tee "$out/bench.txt"
fi
if [[ "$skip" != *" train "* ]]; then
  echo "== qkv train (5000 steps)"
  start=$(date +%s%N)
  timeout 240 "$qkv" train "$config" "${common[@]}" --set "train.out_dir=$work/run" \
    > "$out/train.log" 2>&1
  echo "exit $? wall $(( ($(date +%s%N) - start) / 1000000 )) ms (prepare and start-up included)" |
    tee -a "$out/train.log"
  grep -E "eval step|done|time:|error" "$out/train.log" | tail -30
  cp "$work/run/metrics.jsonl" "$out/metrics.jsonl" 2> /dev/null
fi
if [[ "$skip" != *" eval "* ]] && [ -f "$work/run/best.pt" ]; then
  echo "== qkv eval"
  for b in 8 64; do
    timeout 60 "$qkv" eval "$work/run" --data "$text" --batch-size $b --json 2>&1 |
      tee -a "$out/eval.txt"
  done
fi
if [[ "$skip" != *" nanogpt "* ]] && [ -n "${NANOGPT_DIR:-}" ]; then
  echo "== nanoGPT train.py, ${NANOGPT_STEPS:-600} steps, compile"
  # Logged every 100 steps, each line stamped as it arrives: the mean step between two logged
  # iterations (each reads the loss back, so the stamps are where the GPU is), with the CPU free to
  # run ahead in between as nanoGPT normally does.
  (cd "$NANOGPT_DIR" && PYTHONUNBUFFERED=1 timeout 240 python3 train.py \
    config/train_shakespeare_char.py --max_iters="${NANOGPT_STEPS:-600}" --eval_interval=100000 \
    --log_interval=100 --compile=True --out_dir="$work/nanogpt" 2>&1 |
    while IFS= read -r line; do echo "$(date +%s.%N) $line"; done > "$out/nanogpt.log")
  python3 - "$out/nanogpt.log" << 'PY'
import re, sys
stamps = {int(m.group(2)): float(m.group(1)) for m in
          re.finditer(r"^([\d.]+) iter (\d+): loss", open(sys.argv[1]).read(), re.M)}
first, last = min(k for k in stamps if k >= 100), max(stamps)
print(f"nanoGPT mean step {1000 * (stamps[last] - stamps[first]) / (last - first):.2f} ms "
      f"(iterations {first} to {last})" if last > first else "nanoGPT: no step times")
PY
fi
rm -rf "$work"
