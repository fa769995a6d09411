/**
 * Reverse-mode differentiation over the recorded graph.
 *
 * backward(loss) walks the nodes reachable from `loss` in reverse
 * topological order, applies each primitive's rule (src/autograd/rules.ts)
 * and accumulates into `.grad` of every leaf that has requiresGrad (adding to
 * an existing `.grad`, as repeated backward calls for gradient accumulation
 * expect). Intermediate gradients are dropped as soon as they are used.
 */

import { accumulate, gradRules, type GradRule } from './rules.js';
import { noGrad } from './node.js';
import type { PrimOp } from '../ops/primitives.js';
import { check, fmtShape } from '../tensor/errors.js';
import { full } from '../tensor/create.js';
import { sameShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** Tensors reachable from `root` through nodes, each after all tensors computed from it (reverse topological order). */
function reverseTopological(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative post-order DFS: deep graphs (long sequences of ops) must not overflow the stack.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inputs = top[0].node?.inputs ?? [];
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++];
      if (next.requiresGrad && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(top[0]);
      stack.pop();
    }
  }
  return order.reverse();
}

/** The gradients of `root` (seeded with `seed`) with respect to every tensor in its graph. */
function propagate(root: Tensor, seed: Tensor, keep: (t: Tensor) => boolean): Map<Tensor, Tensor> {
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  const kept = new Map<Tensor, Tensor>();
  for (const t of reverseTopological(root)) {
    const g = grads.get(t);
    if (!g) continue;
    if (keep(t)) kept.set(t, g);
    grads.delete(t);
    const node = t.node;
    if (!node) continue;
    const rule = gradRules[node.op] as GradRule<PrimOp>;
    const inputGrads = rule(g, node);
    node.inputs.forEach((input, i) => {
      const gi = inputGrads[i];
      if (!gi || !input.requiresGrad) return;
      check(sameShape(gi.shape, input.shape), 'backward',
        () => `rule for ${node.op} returned gradient ${fmtShape(gi.shape)} for input ${fmtShape(input.shape)}`);
      grads.set(input, accumulate(grads.get(input), gi));
    });
  }
  return kept;
}

function seedFor(op: string, root: Tensor, grad: Tensor | undefined): Tensor {
  check(root.requiresGrad, op, () => 'the tensor does not require grad (no input had requiresGrad, or it was computed under noGrad)');
  if (grad) {
    check(sameShape(grad.shape, root.shape), op, () => `grad ${fmtShape(grad.shape)} does not match ${fmtShape(root.shape)}`);
    return grad;
  }
  check(root.size === 1, op, () => `implicit gradient needs a single-element tensor, got ${fmtShape(root.shape)}; pass grad`);
  return full(root.shape, 1, { dtype: root.dtype, device: root.backend });
}

/** Accumulates d(root)/d(leaf) into leaf.grad for every leaf with requiresGrad. */
export function backward(root: Tensor, grad?: Tensor): void {
  noGrad(() => {
    const seed = seedFor('backward', root, grad);
    const leafGrads = propagate(root, seed, (t) => t.node === null);
    for (const [leaf, g] of leafGrads) leaf.grad = leaf.grad ? accumulate(leaf.grad, g) : g;
  });
}

/** d(root)/d(x) for each x in `wrt` (zeros where root does not depend on x); leaves' .grad untouched. */
export function gradients(root: Tensor, wrt: readonly Tensor[], grad?: Tensor): Tensor[] {
  return noGrad(() => {
    const seed = seedFor('gradients', root, grad);
    const want = new Set(wrt);
    const got = propagate(root, seed, (t) => want.has(t));
    return wrt.map((x) => got.get(x) ?? full(x.shape, 0, { dtype: x.dtype, device: x.backend }));
  });
}
