#!/usr/bin/env bash
# Label noise in the memorisation regime (docs/EXPERIMENTS.md, 2026-11-28): the
# paper's noisy labels are fixed per example and seen every epoch, so a model can
# memorise them. Here the training data is the first 32 KB of documents of the
# corpus's training split (10 documents, 32,909 bytes), seen about 7.8 times in
# 250 steps of 16 x 64 tokens; the noisy label of a token is the same every epoch
# (src/data/packing.ts). Dense and Top-k (k = 32 of 256) at label noise 0 and 0.3,
# and dense with random labels (the paper's random-label run memorises them), the
# same shape as dev/experiment-noise.sh, evaluated on clean validation data.
# Usage: dev/experiment-noise-memo.sh [runs-dir] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-/work/runs/noise-memo}
steps=${2:-250}
corpus=$(cd "${CORPUS:-../shared/corpus}" && pwd)   # CORPUS=...: when run from a copy of the repository
mkdir -p "$runs"
subset="$runs/train-32k.json.gz"
if [ ! -f "$subset" ]; then
  node -e '
    const zlib = require("zlib"), fs = require("fs");
    const lines = zlib.gunzipSync(fs.readFileSync(process.argv[1])).toString("utf8").split("\n");
    let bytes = 0; const out = [];
    for (const l of lines) { if (!l.trim()) continue; out.push(l); bytes += Buffer.byteLength(JSON.parse(l).text) + 1; if (bytes >= 32768) break; }
    fs.writeFileSync(process.argv[2], zlib.gzipSync(out.join("\n") + "\n"));' "$corpus/linux-docs.train.json.gz" "$subset"
fi
common=(--preset small --steps "$steps" --threads 1 --tokenizer byte
  --data "$subset" --val-data "$corpus/linux-docs.validation.json.gz"
  --d-model 64 --n-heads 4 --n-kv-heads 4 --n-layers 3 --d-ff 256 --context-length 64 --batch 16
  --lr 0.003 --warmup 25 --eval-every 50 --eval-tokens 16384 --checkpoint-every 250 --log-every 10 --shuffle-buffer 64 --seed 0)
run() {
  local name=$1; shift
  if [ -d "$runs/$name/checkpoints/step-$steps" ]; then echo "$name: done"; return; fi
  echo "$name: training ($(date -u +%H:%M:%S))"
  node build/src/cli/main.js train --out "$runs/$name" "${common[@]}" "$@" >> "$runs/$name.log" 2>&1
  node dev/experiment-noise-eval.mjs "$corpus/linux-docs.validation.json.gz" 16384 "$runs/$name"
}
for p in 0 0.3; do
  run "dense-p$p" --ffn dense --label-noise "$p"
  run "topk-p$p" --ffn topk --topk-k 32 --label-noise "$p"
done
run dense-random-labels --ffn dense --random-labels
echo "all done ($(date -u +%H:%M:%S))"
