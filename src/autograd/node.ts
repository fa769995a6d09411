/**
 * Autograd's record of one primitive application, and the switch that turns
 * recording off.
 *
 * A node is attached to the output of a primitive when grad mode is on and
 * some input requires a gradient. It keeps the inputs and the output, so
 * every tensor a gradient rule needs stays alive exactly as long as the graph
 * that needs it (there is no separate "saved tensors" list to get wrong).
 */

import type { OpParams, PrimOp } from '../ops/primitives.js';
import type { Tensor } from '../tensor/tensor.js';

export type NodeFor<O extends PrimOp> = {
  readonly op: O;
  readonly params: OpParams[O];
  readonly inputs: readonly Tensor[];
  readonly out: Tensor;
};

export type GradNode = { [O in PrimOp]: NodeFor<O> }[PrimOp];

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with recording off: nothing computed inside gets a node (inference, optimizer steps, gradient rules). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}
