/**
 * The WebAssembly text of the half-precision kernels of runtime/cpu/half_kernel.ts, and the build
 * step that assembles it into runtime/cpu/half_wasm.ts (the module's bytes as base64, so that
 * loading it needs no assembler):
 *
 * ```sh
 * deno run -A runtime/cpu/half_build.ts
 * ```
 *
 * Four functions over 128-bit vectors, eight 16-bit patterns at a time (counts are multiples of
 * 8; the caller does the rest):
 * - `widen_bf16(src, dst, n)`: n BF16 patterns → float32 (a 16-bit shift);
 * - `widen_f16(src, dst, n)`: n F16 patterns → float32, exactly: the magnitude's bits shifted into
 *   a float32 and multiplied by 2^112 (which also rescales subnormals), the exponent forced to
 *   all ones for infinities and NaNs, the sign put back;
 * - `gemv_bf16(x, w, out, K, N)` and `gemv_f16(…)`: out[n] = Σ_k x[k]·w[n·K + k] for a float32
 *   x (K) and a (N, K) matrix of patterns, widened in registers (nothing float32 is stored), two
 *   accumulators per row, fused multiply-adds where the engine has them (relaxed SIMD).
 *
 * half_kernel_test.ts assembles the text again and fails when it differs from the embedded bytes.
 *
 * @module
 */
import { assembleWat, embeddedWasmSource } from "./wasm_build.ts";
import { writeFileAtomic } from "../atomic.ts";

/** Four u16 patterns (zero-extended to i32 lanes) of F16 → four float32. */
const F16X4 = `
  (func $f16x4 (param $h v128) (result v128)
    (v128.or
      (v128.or
        (f32x4.mul
          (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))
            (i32.const 13))
          (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112))
        (v128.and
          (i32x4.eq (v128.and (local.get $h) (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00))
            (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00))
          (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)))
      (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))
        (i32.const 16))))`;

/** Four u16 patterns (zero-extended to i32 lanes) of BF16 → four float32. */
const BF16X4 = `
  (func $bf16x4 (param $h v128) (result v128)
    (i32x4.shl (local.get $h) (i32.const 16)))`;

/** `widen_<kind>(src, dst, n)`. */
const widen = (kind: "bf16" | "f16") => `
  (func (export "widen_${kind}") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (v128.store (local.get $dst) (call $${kind}x4 (i32x4.extend_low_i16x8_u (local.get $v))))
        (v128.store offset=16 (local.get $dst)
          (call $${kind}x4 (i32x4.extend_high_i16x8_u (local.get $v))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))`;

/** `gemv_<kind>(x, w, out, K, N)`. */
const gemv = (kind: "bf16" | "f16") => `
  (func (export "gemv_${kind}") (param $x i32) (param $w i32) (param $out i32) (param $K i32)
    (param $N i32)
    (local $end i32) (local $xp i32) (local $rowEnd i32) (local $v v128) (local $a v128)
    (local $b v128)
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $N) (i32.const 2))))
    (block $rows
      (loop $row
        (br_if $rows (i32.ge_u (local.get $out) (local.get $end)))
        (local.set $a (v128.const i32x4 0 0 0 0))
        (local.set $b (v128.const i32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $rowEnd (i32.add (local.get $w) (i32.shl (local.get $K) (i32.const 1))))
        (block $cols
          (loop $col
            (br_if $cols (i32.ge_u (local.get $w) (local.get $rowEnd)))
            (local.set $v (v128.load (local.get $w)))
            (local.set $a (f32x4.relaxed_madd
              (call $${kind}x4 (i32x4.extend_low_i16x8_u (local.get $v)))
              (v128.load (local.get $xp)) (local.get $a)))
            (local.set $b (f32x4.relaxed_madd
              (call $${kind}x4 (i32x4.extend_high_i16x8_u (local.get $v)))
              (v128.load offset=16 (local.get $xp)) (local.get $b)))
            (local.set $w (i32.add (local.get $w) (i32.const 16)))
            (local.set $xp (i32.add (local.get $xp) (i32.const 32)))
            (br $col)))
        (local.set $a (f32x4.add (local.get $a) (local.get $b)))
        (local.set $a (f32x4.add (local.get $a)
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $a) (local.get $a))))
        (f32.store (local.get $out) (f32.add (f32x4.extract_lane 0 (local.get $a))
          (f32x4.extract_lane 1 (local.get $a))))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (br $row))))`;

/** The module's text: memory imported as env.memory. */
export function halfWat(): string {
  return `(module
  (import "env" "memory" (memory 1))
${F16X4}
${BF16X4}
${widen("bf16")}
${widen("f16")}
${gemv("bf16")}
${gemv("f16")}
)`;
}

/** Assembles {@linkcode halfWat} with wabt. */
export function assembleHalf(): Promise<Uint8Array> {
  return assembleWat("half.wat", halfWat());
}

/** The text of half_wasm.ts for the given module bytes. */
export function halfWasmSource(bytes: Uint8Array): string {
  return embeddedWasmSource(
    bytes,
    "half_build.ts from halfWat()",
    "The assembled half-precision kernels (half_build.ts), base64.",
    "HALF_WASM",
  );
}

if (import.meta.main) {
  const out = new URL("./half_wasm.ts", import.meta.url).pathname;
  await writeFileAtomic(out, halfWasmSource(await assembleHalf()));
  console.log(`wrote ${out}`);
}
