/**
 * Test helpers shared by every floor's tests: {@link assertAllClose}, the one comparison of
 * numbers against a reference with a tolerance, {@link maxAbsDiff} for the checks that a result
 * moved, and {@link byteModel}, a small random model with the byte-level tokenizer.
 *
 * @module
 */
import assert from "node:assert/strict";
import { CpuModel } from "./cpu/forward.ts";
import { randomModel, tinyConfig } from "./random_model.ts";
import { byteLevelTokenizerJson, tokenizerFromJson } from "./tokenizer.ts";

/** Tolerances of {@link assertAllClose}: |got − want| ≤ atol + rtol·|want|. */
export interface Tolerance {
  /** Absolute tolerance. @default 0 */
  atol?: number;
  /** Relative tolerance. @default 0 */
  rtol?: number;
}

/**
 * Asserts |got − want| ≤ atol + rtol·|want| elementwise (and equal lengths), naming the first
 * bad index, its values and the largest difference. NaN never passes.
 *
 * @param got the values under test
 * @param want the reference values
 * @param tol absolute and relative tolerance
 * @param what the name used in the failure message
 *
 * @example
 * ```ts
 * import { assertAllClose } from "./_testing.ts";
 * assertAllClose([1, 2.0000001], [1, 2], { atol: 1e-6 });
 * ```
 */
export function assertAllClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
  what = "values",
): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const atol = tol.atol ?? 0, rtol = tol.rtol ?? 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= atol + rtol * Math.abs(want[i]!))) {
      assert.fail(
        `${what}[${i}]: got ${got[i]}, want ${want[i]} (|Δ| ${d} > ${atol} + ${rtol}·|want|; ` +
          `largest |Δ| ${maxAbsDiff(got, want)})`,
      );
    }
  }
}

/**
 * The largest |a − b| over two equal-length arrays (NaN when any difference is NaN).
 * @throws {RangeError} when the lengths differ
 */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} ≠ ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = d;
  }
  return m;
}

/** 2 layers, 4 query / 2 kv heads, width 32, 320-entry vocabulary. */
export const byteModelConfig = tinyConfig({
  vocabSize: 320,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  hiddenSize: 32,
  headDim: 8,
  intermediateSize: 48,
});

/**
 * The random model (seed 3, scale 10) on the CPU and the byte-level tokenizer: LongEval
 * calibration prompts need ~600 tokens, which one byte per token gives.
 */
export function byteModel(): {
  cpu: CpuModel<Float32Array>;
  tok: ReturnType<typeof tokenizerFromJson>;
} {
  return {
    cpu: new CpuModel(randomModel(byteModelConfig, 3, 10)),
    tok: tokenizerFromJson(byteLevelTokenizerJson([])),
  };
}
