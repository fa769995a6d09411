#!/usr/bin/env bash
# Calibration and robustness to corrupted inputs of the models trained by
# dev/experiment-ffn-kinds.sh (docs/EXPERIMENTS.md): ECE (15 bins) and NLL on
# clean validation text and with 10% / 30% of the input tokens replaced at random.
# Usage: dev/experiment-calibration.sh [runs-dir] [tokens]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/ffn-kinds}
tokens=${2:-16384}
for name in dense topk sparse-ffn sparse-ffn-qkv; do
  for f in 0 0.1 0.3; do
    node build/src/cli/main.js analyze --model "$runs/$name" --data ../shared/corpus/linux-docs.validation.json.gz \
      --tokens "$tokens" --corrupt-inputs "$f" --json > "$runs/$name.calibration-$f.json"
  done
done
node -e '
const [runs] = process.argv.slice(1);
console.log("| model | corrupted inputs | NLL | accuracy | mean confidence | ECE (equal width) | ECE (equal mass) |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const name of ["dense", "topk", "sparse-ffn", "sparse-ffn-qkv"]) for (const f of ["0", "0.1", "0.3"]) {
  const c = JSON.parse(require("fs").readFileSync(`${runs}/${name}.calibration-${f}.json`, "utf8")).calibration;
  console.log(`| ${name} | ${f} | ${c.nll.toFixed(4)} | ${c.accuracy.toFixed(4)} | ${c.meanConfidence.toFixed(4)} | ${c.equalWidth.ece.toFixed(4)} | ${c.equalMass.ece.toFixed(4)} |`);
}' "$runs"
