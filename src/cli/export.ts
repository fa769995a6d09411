/**
 * `sparselm export --model runs/x --format gguf --out model.gguf`: writes a
 * trained dense llama-architecture model (RMSNorm, RoPE, SwiGLU, dense
 * attention and output, no biases) as a GGUF file that llama.cpp loads.
 * docs/gguf-export.md describes the file; a model with any other layer kind
 * is refused with an error naming the config field.
 */

import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { loadCheckpoint } from '../io/checkpoint.js';
import { writeGguf } from '../io/gguf.js';
import { makeConfig } from '../models/config.js';
import { loadTokenizer } from '../data/tokenizer.js';

export function addExportCommand(program: Command): void {
  program
    .command('export')
    .description('export a trained dense llama-architecture model (e.g. --preset llama) for llama.cpp')
    .requiredOption('--model <dir>', 'a run directory or checkpoint directory')
    .addOption(new Option('--format <name>', 'output format').choices(['gguf']).default('gguf'))
    .requiredOption('--out <file>', 'the file to write (replaced atomically)')
    .action((o: { model: string; format: 'gguf'; out: string }) => {
      const ck = loadCheckpoint(o.model, { device: 'ref' });
      const config = makeConfig(ck.config);
      const tokenizer = loadTokenizer(ck.tokenizer);
      const out = resolve(o.out);
      const s = writeGguf(out, config, ck.params, tokenizer, { name: `sparselm step ${ck.step}` });
      process.stdout.write(`wrote ${s.path}: ${s.tensors} tensors, vocabulary ${s.vocabSize}, ${(s.bytes / 2 ** 20).toFixed(1)} MiB (from ${ck.dir}, step ${ck.step})\n`);
    });
}
