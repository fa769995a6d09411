/**
 * The Tensor: a backend buffer seen through a layout, plus autograd links.
 *
 * A Tensor never changes after construction except for its autograd fields
 * (`grad`, and `requiresGrad` on leaves). Views (reshape of contiguous data,
 * permute, expand, slice) share the buffer of the tensor they view.
 *
 * Lifetime: host buffers ('ref', 'cpu') are ordinary typed arrays owned by
 * the garbage collector; a tensor needs no freeing. `dispose()` exists for
 * device backends, whose memory the collector cannot see: it releases the
 * buffer now, and using the tensor (or a view of it) afterwards is an error.
 * See README.md, "Tensor lifetimes".
 */

import type { Backend, Buffer } from '../backends/backend.js';
import type { DataArray, DType } from './dtype.js';
import { check, fmtShape } from './errors.js';
import { contiguousStrides, isContiguous, numel, type Layout, type Shape } from './shape.js';
import type { GradNode } from '../autograd/node.js';
import { kernelFor } from '../backends/registry.js';

export class Tensor {
  /** Set by backward() on tensors with requiresGrad: d(loss)/d(this). */
  grad: Tensor | null = null;
  /** How this tensor was computed, when autograd recorded it (null for leaves and under noGrad). */
  node: GradNode | null = null;
  private disposed = false;

  constructor(
    readonly backend: Backend,
    readonly buffer: Buffer,
    readonly layout: Layout,
    /** Leaves: whether backward() should fill `grad`. Computed tensors: whether any input needs a gradient. */
    public requiresGrad = false,
  ) {}

  /** A fresh contiguous tensor owning `buffer`. */
  static fromBuffer(backend: Backend, buffer: Buffer, shape: Shape): Tensor {
    return new Tensor(backend, buffer, { shape: [...shape], strides: contiguousStrides(shape), offset: 0 });
  }

  get shape(): readonly number[] { return this.layout.shape; }
  get dtype(): DType { return this.buffer.dtype; }
  get rank(): number { return this.layout.shape.length; }
  get size(): number { return numel(this.layout.shape); }
  get device(): string { return this.backend.name; }
  get isContiguous(): boolean { return isContiguous(this.layout); }

  /** The elements in row-major order, as a new typed array (safe to modify). */
  toArray(): DataArray {
    this.assertAlive('toArray');
    const buf = this.isContiguous && this.layout.offset === 0 && this.buffer.length === this.size
      ? this.buffer
      : kernelFor(this.backend, 'copy', this.dtype)({ buffer: this.buffer, layout: this.layout });
    const data = this.backend.toArray(buf);
    return buf === this.buffer && this.backend.host ? data.slice() : data;
  }

  /** The single element of a tensor with one element. */
  item(): number {
    check(this.size === 1, 'item', () => `tensor of shape ${fmtShape(this.shape)} has ${this.size} elements, not 1`);
    return this.toArray()[0];
  }

  /** Nested arrays, for printing and tests. */
  toNested(): unknown {
    const data = Array.from(this.toArray());
    const build = (axis: number, start: number): unknown => {
      if (axis === this.rank) return data[start];
      const step = numel(this.shape.slice(axis + 1));
      return Array.from({ length: this.shape[axis] }, (_, i) => build(axis + 1, start + i * step));
    };
    return build(0, 0);
  }

  /** Releases a device buffer now (see the file comment); a no-op for host memory beyond marking the tensor dead. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.backend.free(this.buffer);
  }

  get isDisposed(): boolean { return this.disposed; }

  assertAlive(op: string): void {
    check(!this.disposed, op, () => `tensor of shape ${fmtShape(this.shape)} was disposed`);
  }

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}, ${this.device}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}
