/**
 * `sparselm generate`: text from a checkpoint with the fast batch-1 CPU
 * decoder (src/decode/engine.ts). Streams each token's text to stdout as soon
 * as it is complete UTF-8 (a streaming TextDecoder over tokenizer.tokenBytes),
 * stops at end-of-text or --max-tokens, then prints prefill and decode speed
 * on stderr. Errors (empty prompt, prompt + max tokens beyond the context,
 * unknown model directory, tensors not matching the config) are
 * SparselmErrors, reported by main.ts as one line.
 */

import { Command } from 'commander';
import { loadTokenizer } from '../data/tokenizer.js';
import { DecodeEngine } from '../decode/engine.js';
import { Sampler } from '../decode/sampler.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { releaseLoadGarbage } from '../io/memory.js';
import { makeConfig } from '../models/config.js';
import { checkParameters } from '../models/transformer.js';
import { SparselmError } from '../tensor/errors.js';
import { intArg, numArg } from './args.js';


export interface GenerateCliOptions {
  model: string; prompt: string; maxTokens: number; temperature: number; topK: number; topP: number;
  repetitionPenalty: number; seed: number; threads?: number;
}

/** Runs generation; writes text to `out` as produced and the speed line to `err`. Returns the generated ids. */
export function runGenerate(o: GenerateCliOptions, out: (s: string) => void, err: (s: string) => void): number[] {
  if (o.prompt.length === 0) throw new SparselmError('generate: the prompt is empty');
  const sampler = new Sampler({ temperature: o.temperature, topK: o.topK, topP: o.topP, repetitionPenalty: o.repetitionPenalty, seed: o.seed });
  const ck = loadCheckpoint(o.model);
  const config = makeConfig(ck.config);
  checkParameters(config, ck.params);
  const tokenizer = loadTokenizer(ck.tokenizer);
  const ids = tokenizer.encode(o.prompt);
  if (ids.length === 0) throw new SparselmError('generate: the prompt is empty (it encodes to no tokens)');
  if (ids.length + o.maxTokens > config.context_length) {
    throw new SparselmError(`generate: prompt (${ids.length} tokens) + --max-tokens (${o.maxTokens}) = ${ids.length + o.maxTokens} exceed the model's context length ${config.context_length}`);
  }
  const engine = new DecodeEngine(config, ck.params, { threads: o.threads, maxContext: ids.length + o.maxTokens });
  // The checkpoint's arrays were copied into the engine. Unmapping a large one later would
  // stall whichever token is decoding then (src/io/memory.ts); below 256 MB it is a few ms.
  if (engine.weightBytesTotal >= 2 ** 28) releaseLoadGarbage();
  try {
    const history = [...ids];
    const generated: number[] = [];
    const decoder = new TextDecoder('utf-8');
    const t0 = performance.now();
    let logits = engine.prefill(ids);
    const t1 = performance.now();
    let steps = 0;
    for (let i = 0; i < o.maxTokens; i++) {
      const next = sampler.sample(logits, history);
      if (next === tokenizer.eos) break;
      generated.push(next);
      history.push(next);
      const text = decoder.decode(tokenizer.tokenBytes(next), { stream: true });
      if (text.length > 0) out(text);
      if (i + 1 < o.maxTokens) { logits = engine.step(next); steps++; }
    }
    const rest = decoder.decode();
    out(`${rest}\n`);
    const t2 = performance.now();
    const rate = (n: number, ms: number) => (ms > 0 ? (n / (ms / 1000)).toFixed(1) : 'inf');
    err(`prefill: ${ids.length} tokens in ${(t1 - t0).toFixed(1)} ms (${rate(ids.length, t1 - t0)} tokens/s); ` +
      `decode: ${generated.length} tokens (${steps} steps) in ${(t2 - t1).toFixed(1)} ms (${rate(steps, t2 - t1)} tokens/s; ${engine.kernels.threads} threads)\n`);
    return generated;
  } finally {
    engine.dispose();
  }
}

export function addGenerateCommand(program: Command): void {
  program
    .command('generate')
    .description('generate text from a checkpoint with the fast CPU decoder (batch 1), streaming it to stdout')
    .requiredOption('--model <dir>', 'run directory or checkpoint directory')
    .requiredOption('--prompt <text>', 'the text to continue')
    .option('--max-tokens <n>', 'tokens to generate at most', intArg('--max-tokens', 1), 64)
    .option('--temperature <x>', 'sampling temperature (0: greedy)', numArg('--temperature'), 0.8)
    .option('--top-k <n>', 'keep the k most likely tokens (0: all)', intArg('--top-k', 0), 40)
    .option('--top-p <x>', 'nucleus threshold in (0, 1]', numArg('--top-p'), 0.95)
    .option('--repetition-penalty <x>', 'penalty >= 1 for tokens already seen (1: none)', numArg('--repetition-penalty'), 1)
    .option('--seed <n>', 'sampling seed', intArg('--seed', 0), 0)
    .option('--threads <n>', 'kernel threads (default: all cores)', intArg('--threads', 1))
    .action((o: GenerateCliOptions) => {
      runGenerate(o, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
    });
}
