/**
 * Parsers for numeric command-line values, shared by every subcommand, so a
 * bad value reads the same everywhere: "--steps must be a positive integer,
 * got '-4'" (commander prints it and exits with code 1).
 */

import { InvalidArgumentError } from 'commander';

/** An integer >= min (default 1). */
export function intArg(name: string, min = 1): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be ${min === 1 ? 'a positive integer' : `an integer >= ${min}`}, got '${value}'`);
    }
    return n;
  };
}

/** A finite number >= 0. */
export function numArg(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative number, got '${value}'`);
    return n;
  };
}
