/**
 * The WebAssembly text of the decode-attention kernel of runtime/cpu/engine_simd.ts, and the
 * build step that assembles it into runtime/cpu/engine_simd_wasm.ts (the module's bytes as
 * base64, so that loading it needs no assembler):
 *
 * ```sh
 * deno run -A runtime/cpu/engine_simd_build.ts
 * ```
 *
 * The text is written here in TypeScript because its inner loops are unrolled over eight
 * 128-bit vectors (32 floats of a head); engine_simd_test.ts assembles it again and fails when
 * the result differs from the embedded bytes.
 *
 * @module
 */
import { assembleWat, embeddedWasmSource } from "./wasm_build.ts";
import { writeFileAtomic } from "../atomic.ts";

/** `f(0) … f(n−1)`, one per line. */
const rep = (n: number, f: (u: number) => string) =>
  Array.from({ length: n }, (_, u) => f(u)).join("\n");

/**
 * e^x on four lanes for x ≤ 0 (softmax's shifted scores): x = n·ln2 + r with |r| ≤ ln2/2, e^r
 * from Cephes' degree-6 polynomial for expf, 2^n put into the exponent bits. Below −87.34 the
 * result is 2^−126 (about 1e−38), not 0, which no f32 sum holding e^0 = 1 can see.
 */
const EXP4 = `
  (func $exp4 (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128)
    (local.set $x (f32x4.max (local.get $x) (f32x4.splat (f32.const -87.33654))))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $x) (f32x4.splat (f32.const 1.442695041)))))
    (local.set $r
      (f32x4.relaxed_nmadd (local.get $n) (f32x4.splat (f32.const -2.12194440e-4))
        (f32x4.relaxed_nmadd (local.get $n) (f32x4.splat (f32.const 0.693359375)) (local.get $x))))
    (local.set $p (f32x4.splat (f32.const 1.9875691500e-4)))
${
  [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1].map((c) =>
    `    (local.set $p (f32x4.relaxed_madd (local.get $p) (local.get $r) (f32x4.splat (f32.const ${c}))))`
  ).join("\n")
}
    (local.set $p (f32x4.add
      (f32x4.relaxed_madd (f32x4.mul (local.get $p) (local.get $r)) (local.get $r) (local.get $r))
      (f32x4.splat (f32.const 1))))
    (f32x4.mul (local.get $p)
      (i32x4.shl
        (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (i32x4.splat (i32.const 127)))
        (i32.const 23))))`;

/** Horizontal sum and max of four lanes. */
const HORIZONTAL = ["sum", "max"].map((k) => `
  (func $h${k} (param $a v128) (result f32)
    (local.set $a (f32x4.${k === "sum" ? "add" : "max"} (local.get $a)
      (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $a) (local.get $a))))
    (local.set $a (f32x4.${k === "sum" ? "add" : "max"} (local.get $a)
      (i8x16.shuffle 4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11 (local.get $a) (local.get $a))))
    (f32x4.extract_lane 0 (local.get $a)))`).join("");

/** Loads of the rows of a run, for `body`: $kp at the row's chunk, $j its index, $end the run's end. */
const overRuns = (label: string, base: string, body: string) => `
      (local.set $j (i32.const 0))
      (local.set $r (i32.const 0))
      (loop $${label}
        (local.set $kp (i32.add (i32.add (local.get ${base}) (local.get $ch))
          (i32.mul (i32.load (i32.add (local.get $runs) (i32.shl (local.get $r) (i32.const 3))))
            (local.get $rb))))
        (local.set $end (i32.add (local.get $j)
          (i32.load offset=4 (i32.add (local.get $runs) (i32.shl (local.get $r) (i32.const 3))))))
${body}
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br_if $${label} (i32.lt_u (local.get $r) (local.get $nruns))))`;

/** Stores vector or scalar s at $dst on the first chunk, adds it to what is there on the others. */
const accumulate = (kind: "v128" | "f32", s: string) => {
  const add = kind === "v128" ? "f32x4.add" : "f32.add";
  return `(if (i32.eqz (local.get $ch))
            (then (${kind}.store (local.get $dst) ${s}))
            (else (${kind}.store (local.get $dst) (${add} (${kind}.load (local.get $dst)) ${s}))))`;
};

/** [Σa, Σb, Σc, Σd] of four accumulators, into $t0 (uses $t1). */
const reduce4 = (a: string, b: string, c: string, d: string) => `
            (local.set $t0 (f32x4.add
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get ${a}) (local.get ${b}))
              (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get ${a}) (local.get ${b}))))
            (local.set $t1 (f32x4.add
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get ${c}) (local.get ${d}))
              (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get ${c}) (local.get ${d}))))
            (local.set $t0 (f32x4.add
              (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $t0) (local.get $t1))
              (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $t0) (local.get $t1))))`;

const zero = "(v128.const i32x4 0 0 0 0)";
/** The accumulator of row r and query i of a pass. */
const acc = (Q: number, r: number, i: number) => `$a${r * Q + i}`;
/** Query i's pointer in a pass. */
const qPtr = (i: number) => `$q${i}`;
/** Query i's scores, output and 1/Σ in a pass. */
const sPtr = (i: number) => `$s${i}`;

/**
 * One pass of Q queries (1 or 2) over the rows: scores of every listed key for each (reading each
 * key once for all Q), softmax, then the weighted values (reading each value once). Eight
 * accumulators throughout: QK takes 8/Q rows at a time over a 32-float chunk of the head, PV a
 * (32/Q)-float chunk of the head over one row at a time.
 */
function pass(Q: 1 | 2): string {
  const R = 8 / Q, W = 8 / Q; // rows per QK block; vectors per PV chunk
  const qs = Array.from({ length: Q }, (_, i) => i);
  const params = qs.map((i) => `(param ${qPtr(i)} i32) (param ${sPtr(i)} i32) (param $o${i} i32)`)
    .join(" ");
  const dotRow = (r: number, rowAt: string) =>
    rep(
      8,
      (u) =>
        `            (local.set $t0 (v128.load offset=${16 * u} ${rowAt}))\n` +
        qs.map((i) =>
          `            (local.set ${acc(Q, r, i)} (f32x4.relaxed_madd (v128.load offset=${
            16 * u
          } ` +
          `(i32.add (local.get ${qPtr(i)}) (local.get $ch))) (local.get $t0) (local.get ${
            acc(Q, r, i)
          })))`
        ).join("\n"),
    );
  const rowAt = (r: number) =>
    r === 0
      ? "(local.get $kp)"
      : `(i32.add (local.get $kp) (i32.mul (local.get $rb) (i32.const ${r})))`;
  const blockStores = qs.map((i) =>
    Array.from(
      { length: R / 4 },
      (_, h) =>
        `${
          reduce4(
            acc(Q, 4 * h, i),
            acc(Q, 4 * h + 1, i),
            acc(Q, 4 * h + 2, i),
            acc(Q, 4 * h + 3, i),
          )
        }
            (local.set $dst (i32.add (local.get ${
          sPtr(i)
        }) (i32.shl (i32.add (local.get $j) (i32.const ${4 * h})) (i32.const 2))))
            ${accumulate("v128", "(local.get $t0)")}`,
    ).join("")
  ).join("");
  const qk = overRuns(
    "qk_runs",
    "$k",
    `
        (block $blocks_done
          (loop $blocks
            (br_if $blocks_done (i32.gt_u (i32.add (local.get $j) (i32.const ${R})) (local.get $end)))
${rep(8, (a) => `            (local.set $a${a} ${zero})`)}
${Array.from({ length: R }, (_, r) => dotRow(r, rowAt(r))).join("\n")}
${blockStores}
            (local.set $kp (i32.add (local.get $kp) (i32.mul (local.get $rb) (i32.const ${R}))))
            (local.set $j (i32.add (local.get $j) (i32.const ${R})))
            (br $blocks)))
        (block $rest_done
          (loop $rest
            (br_if $rest_done (i32.ge_u (local.get $j) (local.get $end)))
${rep(Q, (i) => `            (local.set ${acc(Q, 0, i)} ${zero})`)}
${dotRow(0, "(local.get $kp)")}
${
      qs.map((i) =>
        `            (local.set $dst (i32.add (local.get ${
          sPtr(i)
        }) (i32.shl (local.get $j) (i32.const 2))))
            ${accumulate("f32", `(call $hsum (local.get ${acc(Q, 0, i)}))`)}`
      ).join("\n")
    }
            (local.set $kp (i32.add (local.get $kp) (local.get $rb)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $rest)))`,
  );
  const pv = overRuns(
    "pv_runs",
    "$v",
    `
        (block $rows_done
          (loop $rows
            (br_if $rows_done (i32.ge_u (local.get $j) (local.get $end)))
${
      qs.map((i) =>
        `            (local.set $p${i} (v128.load32_splat (i32.add (local.get ${
          sPtr(i)
        }) (i32.shl (local.get $j) (i32.const 2)))))`
      ).join("\n")
    }
${
      rep(W, (u) =>
        `            (local.set $t0 (v128.load offset=${16 * u} (local.get $kp)))\n` +
        qs.map((i) =>
          `            (local.set ${
            acc(W, i, u)
          } (f32x4.relaxed_madd (local.get $p${i}) (local.get $t0) (local.get ${acc(W, i, u)})))`
        ).join("\n"))
    }
            (local.set $kp (i32.add (local.get $kp) (local.get $rb)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $rows)))`,
  );
  return `
  ;; ${Q} ${Q === 1 ? "query" : "queries"} per pass over the rows
  (func $pass${Q} ${params}
    (param $k i32) (param $v i32) (param $runs i32) (param $nruns i32) (param $rb i32)
    (param $n i32) (param $n4 i32) (param $scale f32) (param $probs i32)
    (local $r i32) (local $j i32) (local $end i32) (local $ch i32) (local $kp i32) (local $dst i32)
    ${Array.from({ length: 8 }, (_, a) => `(local $a${a} v128)`).join(" ")}
    (local $t0 v128) (local $t1 v128) ${
    qs.map((i) => `(local $p${i} v128) (local $inv${i} f32)`).join(" ")
  }
    ;; scores, chunk by chunk of 32 floats
    (loop $qk_chunks
${qk}
      (local.set $ch (i32.add (local.get $ch) (i32.const 128)))
      (br_if $qk_chunks (i32.lt_u (local.get $ch) (local.get $rb))))
${
    qs.map((i) =>
      `    (local.set $inv${i} (call $softmax (local.get ${
        sPtr(i)
      }) (local.get $n) (local.get $n4) (local.get $scale) (local.get $probs)))`
    ).join("\n")
  }
    ;; out = inv · Σ_j e_j · v_j, chunk by chunk of ${4 * W} floats
    (local.set $ch (i32.const 0))
    (loop $pv_chunks
${rep(8, (a) => `      (local.set $a${a} ${zero})`)}
${pv}
${
    qs.map((i) =>
      `      (local.set $t0 (f32x4.splat (local.get $inv${i})))\n` +
      rep(W, (u) =>
        `      (v128.store offset=${
          16 * u
        } (i32.add (local.get $o${i}) (local.get $ch)) (f32x4.mul (local.get ${
          acc(W, i, u)
        }) (local.get $t0)))`)
    ).join("\n")
  }
      (local.set $ch (i32.add (local.get $ch) (i32.const ${16 * W})))
      (br_if $pv_chunks (i32.lt_u (local.get $ch) (local.get $rb)))))`;
}

/**
 * Softmax of one query's scores in place: pad to n4 with −∞, e = exp(scale·(s − max)); with
 * probs, e/Σe and returns 1, else returns 1/Σe.
 */
const SOFTMAX = `
  (func $softmax (param $sp i32) (param $n i32) (param $n4 i32) (param $scale f32) (param $probs i32)
    (result f32)
    (local $j i32) (local $d i32) (local $end i32) (local $m v128) (local $s v128) (local $e v128)
    (local $sc v128) (local $inv f32)
    (local.set $j (local.get $n))
    (block $padded
      (loop $pad
        (br_if $padded (i32.ge_u (local.get $j) (local.get $n4)))
        (f32.store (i32.add (local.get $sp) (i32.shl (local.get $j) (i32.const 2))) (f32.const -inf))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $pad)))
    (local.set $end (i32.add (local.get $sp) (i32.shl (local.get $n4) (i32.const 2))))
    (local.set $m (f32x4.splat (f32.const -inf)))
    (local.set $d (local.get $sp))
    (loop $max
      (local.set $m (f32x4.max (local.get $m) (v128.load (local.get $d))))
      (local.set $d (i32.add (local.get $d) (i32.const 16)))
      (br_if $max (i32.lt_u (local.get $d) (local.get $end))))
    (local.set $m (f32x4.splat (call $hmax (local.get $m))))
    (local.set $sc (f32x4.splat (local.get $scale)))
    (local.set $s ${zero})
    (local.set $d (local.get $sp))
    (loop $exp
      (local.set $e (call $exp4 (f32x4.mul (f32x4.sub (v128.load (local.get $d)) (local.get $m)) (local.get $sc))))
      (v128.store (local.get $d) (local.get $e))
      (local.set $s (f32x4.add (local.get $s) (local.get $e)))
      (local.set $d (i32.add (local.get $d) (i32.const 16)))
      (br_if $exp (i32.lt_u (local.get $d) (local.get $end))))
    (local.set $inv (f32.div (f32.const 1) (call $hsum (local.get $s))))
    (if (i32.eqz (local.get $probs)) (then (return (local.get $inv))))
    (local.set $e (f32x4.splat (local.get $inv)))
    (local.set $d (local.get $sp))
    (loop $norm
      (v128.store (local.get $d) (f32x4.mul (v128.load (local.get $d)) (local.get $e)))
      (local.set $d (i32.add (local.get $d) (i32.const 16)))
      (br_if $norm (i32.lt_u (local.get $d) (local.get $end))))
    (f32.const 1))`;

/** The kernel's module text. */
export function simdWat(): string {
  const perQuery = (i: string) =>
    [
      `(i32.add (local.get $q) (i32.mul (${i}) (local.get $rb)))`,
      `(i32.add (local.get $scores) (i32.shl (i32.mul (${i}) (local.get $n4)) (i32.const 2)))`,
      `(i32.add (local.get $out) (i32.mul (${i}) (local.get $rb)))`,
    ].join(" ");
  const rest = `(local.get $k) (local.get $v) (local.get $runs) (local.get $nruns) (local.get $rb)
        (local.get $n) (local.get $n4) (local.get $scale) (local.get $probs)`;
  return `;; Generated by runtime/cpu/engine_simd_build.ts (simdWat); the kernel of engine_simd.ts.
(module
  (import "env" "memory" (memory 1))
${EXP4}
${HORIZONTAL}
${SOFTMAX}
${pass(1)}
${pass(2)}

  ;; Attention of G queries over n key rows, for HS a multiple of 32:
  ;;   out[i] = Σ_j softmax_j(scale · q[i]·k_j) · v_j
  ;; Pointers are byte offsets: q and out hold G rows of HS floats; k and v are the bases of the
  ;; key and value rows; runs holds nruns pairs of i32 (first row, row count), rows counted from
  ;; k (and v); scores is scratch of G·n4 floats (n4 = n rounded up to a multiple of 4). With
  ;; probs ≠ 0, scores[i·n4 + j] holds query i's probability of the j-th listed key afterwards.
  ;; No rows: out is zero. Queries go two per pass over the rows, so each key and value is read
  ;; ⌈G/2⌉ times.
  (func (export "attend")
    (param $q i32) (param $k i32) (param $v i32) (param $runs i32) (param $nruns i32)
    (param $G i32) (param $HS i32) (param $scale f32) (param $out i32) (param $scores i32)
    (param $probs i32)
    (local $rb i32) (local $n i32) (local $n4 i32) (local $r i32) (local $i i32)
    (local.set $rb (i32.shl (local.get $HS) (i32.const 2)))
    (block $counted
      (loop $count
        (br_if $counted (i32.ge_u (local.get $r) (local.get $nruns)))
        (local.set $n (i32.add (local.get $n)
          (i32.load offset=4 (i32.add (local.get $runs) (i32.shl (local.get $r) (i32.const 3))))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $count)))
    (local.set $n4 (i32.and (i32.add (local.get $n) (i32.const 3)) (i32.const -4)))
    (if (i32.eqz (local.get $n)) (then
      (memory.fill (local.get $out) (i32.const 0) (i32.mul (local.get $G) (local.get $rb)))
      (return)))
    (block $pairs_done
      (loop $pairs
        (br_if $pairs_done (i32.gt_u (i32.add (local.get $i) (i32.const 2)) (local.get $G)))
        (call $pass2 ${perQuery("local.get $i")}
          ${perQuery("i32.add (local.get $i) (i32.const 1)")}
          ${rest})
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $pairs)))
    (if (i32.lt_u (local.get $i) (local.get $G)) (then
      (call $pass1 ${perQuery("local.get $i")}
        ${rest}))))
)
`;
}

/** The bytes of {@link simdWat}, assembled with SIMD and relaxed SIMD enabled. */
export function assembleSimd(): Promise<Uint8Array> {
  return assembleWat("engine_simd.wat", simdWat());
}

/** The text of engine_simd_wasm.ts for the given module bytes. */
export function wasmSource(bytes: Uint8Array): string {
  return embeddedWasmSource(
    bytes,
    "engine_simd_build.ts from simdWat()",
    "The assembled decode-attention kernel (engine_simd_build.ts), base64.",
    "ENGINE_SIMD_WASM",
  );
}

if (import.meta.main) {
  const out = new URL("./engine_simd_wasm.ts", import.meta.url).pathname;
  await writeFileAtomic(out, wasmSource(await assembleSimd()));
  console.log(`wrote ${out}`);
}
