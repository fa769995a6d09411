#!/usr/bin/env bash
# The Lazy Neuron corruption experiments (docs/EXPERIMENTS.md, 2026-11-28):
#   a. label noise 0 / 0.1 / 0.3 for dense, Top-k (k = 32 of 256) and Sparse FF (1 of 32 per block), seed 0;
#   d. a second seed (1) of dense and Top-k at label noise 0 and 0.3;
#   b. random labels, random inputs (targets the real next tokens), and both, for the dense model;
#   c. Top-k with k = 8 and 128 of 256 (k = 32 and dense are runs of a).
# One small shape for all (d_model 64, 3 layers, d_ff 256, context 64, batch 16, 250 steps: 256,000 byte tokens),
# trained one at a time on one thread, then evaluated on clean validation data (dev/experiment-noise-eval.mjs).
# A run whose final checkpoint exists is not trained again, so the script can be re-run after an interruption
# (an interrupted run is continued with --resume).
# Usage: dev/experiment-noise.sh [runs-dir] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-/work/runs/noise}
steps=${2:-250}
corpus=$(cd "${CORPUS:-../shared/corpus}" && pwd)   # CORPUS=...: when run from a copy of the repository
mkdir -p "$runs"
common=(--preset small --steps "$steps" --threads 1 --tokenizer byte
  --data "$corpus/linux-docs.train.json.gz" --val-data "$corpus/linux-docs.validation.json.gz"
  --d-model 64 --n-heads 4 --n-kv-heads 4 --n-layers 3 --d-ff 256 --context-length 64 --batch 16
  --lr 0.003 --warmup 25 --eval-every 125 --eval-tokens 16384 --checkpoint-every 125 --log-every 10)
dense=(--ffn dense)
topk=(--ffn topk --topk-k 32)
sparse=(--ffn sparse --sparse-block 32 --sparse-lowrank 16)
run() {
  local name=$1; shift
  if [ -d "$runs/$name/checkpoints/step-$steps" ]; then echo "$name: done"; return; fi
  local resume=()
  if [ -d "$runs/$name/checkpoints" ]; then resume=(--resume); fi
  echo "$name: training ($(date -u +%H:%M:%S))"
  node build/src/cli/main.js train --out "$runs/$name" "${common[@]}" "$@" "${resume[@]}" >> "$runs/$name.log" 2>&1
  node dev/experiment-noise-eval.mjs "$corpus/linux-docs.validation.json.gz" 16384 "$runs/$name"
}
# a
for p in 0 0.1 0.3; do
  run "dense-p$p-s0" "${dense[@]}" --label-noise "$p" --seed 0
  run "topk-p$p-s0" "${topk[@]}" --label-noise "$p" --seed 0
  run "sparse-p$p-s0" "${sparse[@]}" --label-noise "$p" --seed 0
done
# d
for p in 0 0.3; do
  run "dense-p$p-s1" "${dense[@]}" --label-noise "$p" --seed 1
  run "topk-p$p-s1" "${topk[@]}" --label-noise "$p" --seed 1
done
# b
run dense-random-labels "${dense[@]}" --random-labels --seed 0
run dense-random-inputs "${dense[@]}" --random-inputs --seed 0
run dense-random-both "${dense[@]}" --random-inputs --random-labels --seed 0
# c
for k in 8 128; do run "topk$k-p0-s0" --ffn topk --topk-k "$k" --seed 0; done
echo "all done ($(date -u +%H:%M:%S))"
