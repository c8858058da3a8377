/**
 * Half-precision kernels on WebAssembly SIMD (runtime/cpu/half_build.ts): widening F16/BF16
 * patterns to float32 eight at a time, and a matrix–vector product that widens in registers, for
 * decode, where a compact weight would otherwise be widened in full for one row of activations.
 * Each {@linkcode HalfKernel} owns a WebAssembly memory of about 6.3 MiB (the activations, one
 * block of patterns and its float32 widening); calls may overlap (engines are async), so a
 * kernel is taken from a pool for the length of one product. Where WebAssembly has no (relaxed)
 * SIMD, or `MOA_HALF_SIMD=0`, there is no kernel and callers widen in TypeScript.
 *
 * @module
 */
import { HALF_WASM } from "./half_wasm.ts";
import { type HalfWeight, widenInto } from "../model.ts";

/** Patterns per block: what one kernel widens or multiplies at a time. */
export const KERNEL_ELEMENTS = 1 << 20;
/** The longest activation row the products take (floats). */
export const KERNEL_MAX_K = 1 << 16;

const X = 0; // activations: KERNEL_MAX_K floats
const W = X + 4 * KERNEL_MAX_K; // patterns: KERNEL_ELEMENTS u16
const DST = W + 2 * KERNEL_ELEMENTS; // widened values or products: KERNEL_ELEMENTS floats
const BYTES = DST + 4 * KERNEL_ELEMENTS;

interface Exports {
  widen_bf16(src: number, dst: number, n: number): void;
  widen_f16(src: number, dst: number, n: number): void;
  gemv_bf16(x: number, w: number, out: number, K: number, N: number): void;
  gemv_f16(x: number, w: number, out: number, K: number, N: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

/** The compiled module, or null where it cannot run here (or `MOA_HALF_SIMD=0`). */
function halfModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  try {
    if (Deno.env.get("MOA_HALF_SIMD") === "0") return compiled;
  } catch { /* no env permission: the kernel is allowed */ }
  const bytes = Uint8Array.from(atob(HALF_WASM), (c) => c.charCodeAt(0));
  if (WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes);
  return compiled;
}

/** One instance of the kernels with its own memory. */
export class HalfKernel {
  readonly #f: Exports;
  readonly #buffer: ArrayBuffer;

  private constructor(module: WebAssembly.Module) {
    const memory = new WebAssembly.Memory({ initial: Math.ceil(BYTES / 65536) });
    this.#f = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Exports;
    this.#buffer = memory.buffer as ArrayBuffer; // not shared: no `shared` in the descriptor
  }

  /** A new kernel, or null where the module cannot run. */
  static create(): HalfKernel | null {
    const m = halfModule();
    return m === null ? null : new HalfKernel(m);
  }

  /**
   * Elements `start .. start + count` of a half weight as float32 (count ≤ KERNEL_ELEMENTS).
   * @returns a view into the kernel's memory, valid until its next call
   */
  widen(w: HalfWeight, start: number, count: number): Float32Array {
    new Uint16Array(this.#buffer, W, count).set(w.bits.subarray(start, start + count));
    const whole = count - (count % 8);
    (w.dtype === "BF16" ? this.#f.widen_bf16 : this.#f.widen_f16)(W, DST, whole);
    const out = new Float32Array(this.#buffer, DST, count);
    if (whole < count) widenInto(out.subarray(whole), w, start + whole, count - whole);
    return out;
  }

  /**
   * out[m·N + n0 + n] = Σ_k x[m·K + k] · w[(n0 + n)·K + k] for rows n < rows of a (N, K) half
   * weight and every row m < M of x: the weight block is read once per row of x.
   * @throws {RangeError} unless K is a multiple of 8, at most KERNEL_MAX_K, and rows·K fits a
   *   block
   */
  gemv(
    out: Float32Array,
    x: Float32Array,
    w: HalfWeight,
    M: number,
    K: number,
    N: number,
    n0: number,
    rows: number,
  ): void {
    if (K % 8 !== 0 || K > KERNEL_MAX_K || rows * K > KERNEL_ELEMENTS) {
      throw new RangeError(`HalfKernel.gemv: K = ${K}, ${rows} rows do not fit the kernel`);
    }
    new Uint16Array(this.#buffer, W, rows * K).set(w.bits.subarray(n0 * K, (n0 + rows) * K));
    const f = w.dtype === "BF16" ? this.#f.gemv_bf16 : this.#f.gemv_f16;
    const xs = new Float32Array(this.#buffer, X, K),
      res = new Float32Array(this.#buffer, DST, rows);
    for (let m = 0; m < M; m++) {
      xs.set(x.subarray(m * K, (m + 1) * K));
      f(X, W, DST, K, rows);
      out.set(res, m * N + n0);
    }
  }
}

const pool: HalfKernel[] = [];

/** A kernel for the length of one product (give it back), or null where none can run. */
export function takeKernel(): HalfKernel | null {
  return pool.pop() ?? HalfKernel.create();
}

/** Returns a kernel to the pool. */
export function giveKernel(k: HalfKernel): void {
  if (pool.length < 8) pool.push(k);
}
