import assert from "node:assert/strict";
import { type HalfWeight, widenInto } from "../model.ts";
import { assembleHalf, halfWasmSource } from "./half_build.ts";
import { HalfKernel } from "./half_kernel.ts";
import { HALF_WASM } from "./half_wasm.ts";
import { Rng } from "../rng.ts";

Deno.test("the embedded half kernels are halfWat() assembled (rerun half_build.ts if not)", async () => {
  const bytes = await assembleHalf();
  assert.equal(
    halfWasmSource(bytes),
    await Deno.readTextFile(new URL("./half_wasm.ts", import.meta.url)),
  );
  assert.equal(btoa(String.fromCharCode(...bytes)), HALF_WASM);
});

/** Every 16-bit pattern once, shuffled, plus 5 so the count is not a multiple of 8. */
function everyPattern(dtype: HalfWeight["dtype"]): HalfWeight {
  const bits = new Uint16Array(65536 + 5);
  for (let i = 0; i < 65536; i++) bits[i] = i;
  for (let i = 65536; i < bits.length; i++) bits[i] = i * 7919;
  return { dtype, bits };
}

const kernel = HalfKernel.create();
const why = kernel === null ? " (skipped: no WebAssembly relaxed SIMD here)" : "";

Deno.test({
  name: `HalfKernel.widen() gives widenInto()'s bits for all 65,536 F16 and BF16 patterns${why}`,
  ignore: kernel === null,
  fn() {
    for (const dtype of ["F16", "BF16"] as const) {
      const w = everyPattern(dtype);
      const want = new Float32Array(w.bits.length);
      widenInto(want, w, 0, w.bits.length);
      // three blocks at odd offsets, so starts and tails that are not multiples of 8 are covered
      for (const [start, count] of [[0, 65541], [3, 1000], [65530, 11]] as [number, number][]) {
        const got = kernel!.widen(w, start, count);
        const a = new Uint32Array(got.buffer, got.byteOffset, count);
        const b = new Uint32Array(want.buffer, start * 4, count);
        for (let i = 0; i < count; i++) {
          // NaNs keep their sign and payload class; any NaN pattern for a NaN input is accepted
          if (Number.isNaN(want[start + i]!)) {
            assert.ok(Number.isNaN(got[i]!), `${dtype} ${start + i}`);
          } else if (a[i] !== b[i]) {
            assert.fail(`${dtype} pattern ${w.bits[start + i]}: ${got[i]} vs ${want[start + i]}`);
          }
        }
      }
    }
  },
});

Deno.test({
  name:
    `HalfKernel.gemv() agrees with float64 products of the widened weight (1e-6 relative)${why}`,
  ignore: kernel === null,
  fn() {
    const rng = new Rng(5);
    for (const dtype of ["F16", "BF16"] as const) {
      for (
        const [M, K, N, n0, rows] of [[1, 8, 3, 0, 3], [2, 64, 40, 8, 17], [
          1,
          344,
          128,
          0,
          128,
        ]] as [number, number, number, number, number][]
      ) {
        const bits = new Uint16Array(N * K);
        const wide = new Float32Array(N * K);
        // finite values of either kind: random mantissas, exponents near 1
        for (let i = 0; i < bits.length; i++) {
          bits[i] = dtype === "F16"
            ? (rng.next() < 0.5 ? 0x8000 : 0) | ((13 + Math.floor(rng.next() * 4)) << 10) |
              Math.floor(rng.next() * 1024)
            : (rng.next() < 0.5 ? 0x8000 : 0) | ((125 + Math.floor(rng.next() * 4)) << 7) |
              Math.floor(rng.next() * 128);
        }
        const w: HalfWeight = { dtype, bits };
        widenInto(wide, w, 0, N * K);
        const x = Float32Array.from({ length: M * K }, () => rng.next() * 2 - 1);
        const out = new Float32Array(M * N).fill(-7);
        kernel!.gemv(out, x, w, M, K, N, n0, rows);
        for (let m = 0; m < M; m++) {
          for (let n = 0; n < N; n++) {
            const got = out[m * N + n]!;
            if (n < n0 || n >= n0 + rows) {
              assert.equal(got, -7, "rows outside the block are left alone");
              continue;
            }
            let want = 0, scale = 0;
            for (let k = 0; k < K; k++) {
              want += x[m * K + k]! * wide[n * K + k]!;
              scale += Math.abs(x[m * K + k]! * wide[n * K + k]!);
            }
            assert.ok(
              Math.abs(got - want) <= 1e-6 * scale,
              `${dtype} M${M} K${K} (${m}, ${n}): ${got} vs ${want}`,
            );
          }
        }
      }
    }
    assert.throws(() =>
      kernel!.gemv(
        new Float32Array(4),
        new Float32Array(12),
        {
          dtype: "F16",
          bits: new Uint16Array(48),
        },
        1,
        12,
        4,
        0,
        4,
      ), /K = 12/);
  },
});
