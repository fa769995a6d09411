// Evaluates trained runs for the label-noise experiments (docs/EXPERIMENTS.md,
// "Label noise, random labels and random inputs"), on one thread: for each run
// directory, on the first N tokens of the validation data (whole sequences,
// unshuffled, always clean targets):
//   - the Lazy Neuron statistics of every FF layer (sparselm analyze), of which
//     the mean per-token nonzero fraction is kept;
//   - next-token calibration (sparselm analyze --calibration: NLL, accuracy,
//     confidence, ECE over 15 equal-width and 15 equal-mass bins) on clean
//     inputs and with 10% / 30% of the input tokens replaced at random
//     (--corrupt-inputs, seed 1).
// It writes <run>/noise-eval.json, and analysis.json / calibration.json in the
// format `sparselm analyze --save` writes, for `sparselm report`.
// Usage: node dev/experiment-noise-eval.mjs <validation data> <tokens> <run dir>...
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../build/src/', import.meta.url);
const { configureCpu } = await import(new URL('backends/registry.js', root));
const { loadCheckpoint } = await import(new URL('io/checkpoint.js', root));
const { makeConfig } = await import(new URL('models/config.js', root));
const { checkParameters } = await import(new URL('models/transformer.js', root));
const { loadTokenizer } = await import(new URL('data/tokenizer.js', root));
const { tensor } = await import(new URL('tensor/create.js', root));
const { analyzeModel } = await import(new URL('analysis/analyze.js', root));
const { calibrateModel } = await import(new URL('analysis/calibration.js', root));

const [data, tokensArg, ...runs] = process.argv.slice(2);
const tokens = Number(tokensArg);
if (!data || !Number.isInteger(tokens) || tokens <= 0 || runs.length === 0) {
  console.error('usage: node dev/experiment-noise-eval.mjs <validation data> <tokens> <run dir>...');
  process.exit(1);
}
configureCpu({ threads: 1 });
for (const run of runs) {
  const ck = loadCheckpoint(run);
  const config = makeConfig(ck.config);
  const params = Object.fromEntries(Object.entries(ck.params).map(([k, v]) => [k, tensor(v.toArray(), v.shape)]));
  checkParameters(config, params);
  const tokenizer = loadTokenizer(ck.tokenizer);
  const analysis = await analyzeModel(config, params, tokenizer, [data], { tokens, batchSize: 8, split: 'validation' });
  const calibration = {};
  for (const fraction of [0, 0.1, 0.3]) {
    const corrupt = fraction === 0 ? undefined : { fraction, seed: 1 };
    calibration[fraction] = await calibrateModel(config, params, tokenizer, [data], { tokens, batchSize: 8, corrupt });
  }
  const settings = ck.trainer.settings;
  const out = {
    run, step: ck.step, ffn: config.ffn, topk_k: config.topk_k, d_ff: config.d_ff, seed: settings.seed,
    labelNoise: settings.labelNoise ?? 0, randomLabels: settings.randomLabels ?? false, randomInputs: settings.randomInputs ?? false,
    nonzero: Object.fromEntries(analysis.layers.map((l) => [l.layer, l.nonzero.fraction.mean])),
    dead: Object.fromEntries(analysis.layers.map((l) => [l.layer, l.firing.dead ?? null])),
    calibration: Object.fromEntries(Object.entries(calibration).map(([f, c]) => [f, {
      nll: c.nll, accuracy: c.accuracy, meanConfidence: c.meanConfidence, eceEqualWidth: c.equalWidth.ece, eceEqualMass: c.equalMass.ece, tokens: c.tokens,
    }])),
  };
  writeFileSync(join(run, 'noise-eval.json'), JSON.stringify(out, null, 1) + '\n');
  const full = { checkpoint: ck.dir, step: ck.step, ...analysis, calibration: calibration[0] };
  writeFileSync(join(run, 'analysis.json'), JSON.stringify(full, null, 1) + '\n');
  writeFileSync(join(run, 'calibration.json'), JSON.stringify({ checkpoint: ck.dir, step: ck.step, data: analysis.data, split: analysis.split, ...calibration[0] }, null, 1) + '\n');
  const c0 = calibration[0];
  console.log(`${run}: NLL ${c0.nll.toFixed(4)} ECE ${c0.equalWidth.ece.toFixed(4)} / ${c0.equalMass.ece.toFixed(4)} | nonzero ${Object.values(out.nonzero).map((v) => (100 * v).toFixed(1) + '%').join(' ')}`);
}
