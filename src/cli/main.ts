#!/usr/bin/env node
/**
 * The `sparselm` command. Each subcommand parses its flags (unknown flags are
 * errors), runs, and reports failures as one clear line on stderr with exit
 * code 1: a SparselmError's message names what was wrong; anything else is a
 * bug and keeps its stack trace.
 */

import { Command } from 'commander';
import { SparselmError } from '../tensor/errors.js';
import { runDemo } from './demo.js';
import { addTrainCommands } from './train.js';
import { intArg } from './args.js';
import { addGenerateCommand } from './generate.js';
import { addExportCommand } from './export.js';
import { addReportCommand } from './report.js';
import { addAnalyzeCommand } from './analyze.js';
import { addSweepCommand } from './sweep.js';


const program = new Command()
  .name('sparselm')
  .description('Activation-sparse Transformer language models: train, analyse, decode.')
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) });

program
  .command('demo')
  .description('train a small Sparse FF language model on the bundled sample, show its sparsity, generate text')
  .option('--steps <n>', 'training steps', intArg('--steps'), 300)
  .option('--out <dir>', 'run directory (default: a new temporary directory)')
  .option('--seed <n>', 'random seed', intArg('--seed'), 1)
  .option('--max-tokens <n>', 'tokens (bytes) of text to generate', intArg('--max-tokens'), 64)
  .action(async (o: { steps: number; out?: string; seed: number; maxTokens: number }) => {
    await runDemo(o);
  });

addTrainCommands(program);
addGenerateCommand(program);
addExportCommand(program);
addReportCommand(program);
addAnalyzeCommand(program);
addSweepCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof SparselmError) {
    process.stderr.write(`sparselm: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
