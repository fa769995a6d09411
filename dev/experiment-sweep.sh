#!/usr/bin/env bash
# The depth x width experiment (docs/EXPERIMENTS.md, "Depth x width sweep"):
# dense ReLU byte-level language models with 2, 4 and 8 layers and d_ff 256,
# 512 and 1024 (d_model 64), each trained on the same number of tokens of
# ../shared/corpus, then their FF activation sparsity measured on validation
# and training text (`sparselm sweep`), then the report's figures drawn.
# One training process at a time, one thread: the machine is shared.
# Rerunning the same command resumes an interrupted sweep.
# Usage: dev/experiment-sweep.sh [tokens per model] [sweep dir]
set -euo pipefail
cd "$(dirname "$0")/.."
tokens=${1:-491520}
out=${2:-runs/sweep}
mkdir -p "$out"
node build/src/cli/main.js sweep --layers 2,4,8 --d-ff 256,512,1024 --out "$out" --tokens "$tokens" \
  --threads 1 --analyze-tokens 32768 \
  --preset small --tokenizer byte --ffn dense --activation relu \
  --data ../shared/corpus/linux-docs.train.json.gz --val-data ../shared/corpus/linux-docs.validation.json.gz \
  --d-model 64 --n-heads 4 --n-kv-heads 4 --context-length 128 --batch 16 \
  --lr 0.003 --warmup 25 --seed 0 --eval-every 0 --eval-tokens 65536 --checkpoint-every 40 --log-every 10 \
  2> "$out/sweep.log" | tee "$out/table.txt"
node build/src/cli/main.js report "$out" --out "$out/report"
