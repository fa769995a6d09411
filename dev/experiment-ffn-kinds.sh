#!/usr/bin/env bash
# The models experiment (docs/EXPERIMENTS.md): dense, Top-k, Sparse FF and
# Sparse FF + Sparse QKV language models of (nearly) equal parameter count,
# trained on the same tokens of ../shared/corpus, byte-level.
# Usage: dev/experiment-ffn-kinds.sh [steps] [runs-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
runs=${2:-runs/ffn-kinds}
mkdir -p "$runs"
common=(--preset small --steps "$steps" --threads 1 --tokenizer byte
  --data ../shared/corpus/linux-docs.train.json.gz --val-data ../shared/corpus/linux-docs.validation.json.gz
  --d-model 128 --n-heads 4 --n-kv-heads 4 --n-layers 4 --context-length 128 --batch 16
  --sparse-block 32 --sparse-lowrank 16 --qkv-modules 4
  --lr 0.003 --warmup 30 --eval-every 100 --eval-tokens 65536 --checkpoint-every 100)
run() { local name=$1; shift; node build/src/cli/main.js train --out "$runs/$name" "${common[@]}" "$@" > "$runs/$name.log" 2>&1; }
# Two at a time, one thread each, on a 2-core machine.
run dense --d-ff 512 & run sparse-ffn-qkv --ffn sparse --attn sparse --d-ff 640 & wait
run topk --d-ff 512 --ffn topk --topk-k 64 & run sparse-ffn --d-ff 512 --ffn sparse & wait
for name in dense topk sparse-ffn sparse-ffn-qkv; do
  printf '%-16s %s\n' "$name" "$(grep -E '^parameters|^final validation' "$runs/$name.log" | tr '\n' ' ')"
done
