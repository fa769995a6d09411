// Prints a markdown summary of training runs from their metrics.jsonl and logs:
// validation loss (nats/token and bits/byte) at each evaluation, parameters,
// throughput, and the fraction of nonzero FF activations per token per layer.
// Usage: node dev/experiment-summary.mjs runs/ffn-kinds/dense runs/ffn-kinds/topk ...
import { readFileSync, existsSync } from 'node:fs';
import { basename } from 'node:path';

const runs = process.argv.slice(2);
const rows = [];
for (const dir of runs) {
  const lines = readFileSync(`${dir}/metrics.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const evals = lines.filter((m) => m.val_loss !== undefined);
  const train = lines.filter((m) => m.loss !== undefined);
  const log = existsSync(`${dir}.log`) ? readFileSync(`${dir}.log`, 'utf8') : '';
  const params = /parameters: ([\d,]+)/.exec(log)?.[1] ?? '?';
  const last = evals[evals.length - 1];
  const tps = train.length ? train[train.length - 1].tokens_per_s : NaN;
  rows.push({ name: basename(dir), params, evals, last, tps, tokens: train.length ? train[train.length - 1].tokens : 0 });
}
const steps = [...new Set(rows.flatMap((r) => r.evals.map((e) => e.step)))].sort((a, b) => a - b);
console.log(`| model | parameters | tokens | ${steps.map((s) => `val loss @${s}`).join(' | ')} | bits/byte (final) | train tokens/s |`);
console.log(`| --- | ---: | ---: | ${steps.map(() => '---:').join(' | ')} | ---: | ---: |`);
for (const r of rows) {
  const at = (s) => r.evals.find((e) => e.step === s)?.val_loss.toFixed(4) ?? '-';
  console.log(`| ${r.name} | ${r.params} | ${r.tokens.toLocaleString('en-US')} | ${steps.map(at).join(' | ')} | ${r.last ? r.last.val_bits_per_byte.toFixed(4) : '-'} | ${Math.round(r.tps)} |`);
}
console.log('');
const layers = Object.keys(rows[0]?.last?.val_sparsity ?? {});
console.log(`| model | ${layers.map((l) => `${l} % nonzero`).join(' | ')} |`);
console.log(`| --- | ${layers.map(() => '---:').join(' | ')} |`);
for (const r of rows) console.log(`| ${r.name} | ${layers.map((l) => (100 * (r.last?.val_sparsity?.[l] ?? NaN)).toFixed(2)).join(' | ')} |`);
