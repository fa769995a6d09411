/**
 * Element types. sparselm has three: float32 (the working type of every fast
 * kernel), float64 (the reference type: gradient checks and golden tests run
 * in it) and int32 (indices, masks, token ids).
 *
 * Invariant: a buffer's typed array always matches its dtype exactly.
 */

export type DType = 'float32' | 'float64' | 'int32';
export type FloatDType = 'float32' | 'float64';

export type DataArray = Float32Array | Float64Array | Int32Array;

export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32'];

export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype !== 'int32';
}

export function bytesPerElement(dtype: DType): number {
  return dtype === 'float64' ? 8 : 4;
}

/** A zero-filled typed array of `n` elements of `dtype`. */
export function allocArray(dtype: DType, n: number): DataArray {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'int32': return new Int32Array(n);
    default: return dtype satisfies never;
  }
}

export function dtypeOfArray(a: DataArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  return 'int32';
}
