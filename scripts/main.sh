#!/usr/bin/env bash
# The main job on the default config: get the corpus, prepare it, train, sample from the best
# checkpoint and evaluate its perplexity on the validation split. Assumes scripts/setup.sh has
# built build/qkv.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
config="${1:-configs/shakespeare_char.yaml}"
qkv="${QKV_BIN:-$root/build/qkv}"
run_dir="$(grep -E '^\s*out_dir:' "$config" | head -1 | awk '{print $2}')"

scripts/get_data.sh
"$qkv" prepare "$config"
if [ -f "$run_dir/last.pt" ]; then
  echo "main: $run_dir already holds a trained run; remove it to train again"
else
  "$qkv" train "$config" --no-prepare
fi
data_dir="$(grep -E '^\s*dir:' "$config" | head -1 | awk '{print $2}')"
echo "main: checkpoint: $run_dir/best.pt"
echo "main: a sample from it:"
"$qkv" generate "$run_dir" --prompt "ROMEO:" --max-new-tokens 300 --temperature 0.8 --top-k 40 --seed 1
echo "main: its perplexity on the validation split:"
"$qkv" eval "$run_dir" --data "$data_dir/val.bin"
echo "main: what layer 1 attends to in a short text (tables; heatmaps and JSON in $run_dir/attention):"
"$qkv" attention "$run_dir" --text "money bank grows" --layer 1 --head 1 --out "$run_dir/attention"
echo "main: the same word in two contexts (one pair, raw cosines: see below for why this cannot show the lesson):"
"$qkv" embed "$run_dir" --text "money bank grows" --text "river bank flows" --word bank
"$qkv" report "$run_dir"
echo "main: open $run_dir/report.html for the loss curves, a sample and the attention heatmaps"

# The lesson itself needs a corpus where a word's sense decides what follows it (Shakespeare
# has no money banks) and one token per word: configs/senses.yaml generates one and trains in
# about 20 s. The probe's context words never stood before the ambiguous word in training.
senses=configs/senses.yaml
senses_run="$(grep -E '^\s*out_dir:' "$senses" | head -1 | awk '{print $2}')"
senses_data="$(grep -E '^\s*dir:' "$senses" | head -1 | awk '{print $2}')"
if [ -f "$senses_run/last.pt" ]; then
  echo "main: $senses_run already holds a trained run; remove it to train again"
else
  "$qkv" train "$senses"
fi
for word in bank apple; do
  echo "main: \"$word\" over many sentences, by sense, on held-out context words:"
  "$qkv" embed "$senses_run" --senses "$senses_data/corpus.probe.tsv" --word "$word" \
    --out "$senses_run/embed"
done
"$qkv" report "$senses_run" > /dev/null
echo "main: PCA plots of each level in $senses_run/embed/, and in $senses_run/report.html"
echo "main: to explore either model in the browser (attention of every head, the formula with its"
echo "      numbers, generation, embeddings) or call it as an OpenAI-compatible API:"
echo "      $qkv serve $run_dir     then open http://127.0.0.1:8080/"
