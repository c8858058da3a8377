/**
 * Every GPU kernel against its CPU twin on seeded random inputs. Tolerances: |gpu − cpu| ≤
 * atol + rtol·|cpu| with the values stated per case (f32 storage: float32 rounding of sums of
 * different order; f16 storage: the CPU twin reads the same f16-rounded values). Skipped when
 * there is no WebGPU adapter; f16 steps are ignored, saying why, on an adapter without
 * `shader-f16`.
 */
import assert from "node:assert/strict";
import { Rng } from "../../rng.ts";
import {
  decodeFrom,
  encodeAs,
  getGpu,
  hasGpu,
  readBuffer,
  storage,
  writeBuffer,
} from "../device.ts";
import { storageStep } from "../_testing.ts";
import { assertAllClose } from "../../_testing.ts";
import { type KernelConfig, runOps } from "./_op.ts";
import { embedOp, rmsnormOp, ropeOp, ropeTable, swigluOp } from "./elementwise.ts";
import { matmulOp } from "./matmul.ts";
import {
  argmaxOp,
  attnDecodeOps,
  attnPrefillOp,
  type CacheBuffers,
  cacheLayout,
  headTable,
  kvStoreOp,
  windowStartQ15,
} from "./attention.ts";
import { applyRope, argmax, embedTokens, rmsnorm, ropeInvFreq, siluMul } from "../../cpu/ops.ts";
import { matmulTSync, tsEngine } from "../../cpu/engine_ts.ts";
import { MoaKvCache } from "../../cpu/sparse_cache.ts";
import { elasticSpan, type SparsePlan } from "../../spans.ts";
import { tinyConfig } from "../../random_model.ts";

const ignore = !(await hasGpu());

function randn(rng: Rng, n: number, std = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
  return a;
}

/** f32 values after a round trip through f16. */
function viaF16(a: Float32Array): Float32Array {
  return decodeFrom((encodeAs(a, "f16") as Uint16Array).buffer as ArrayBuffer, a.length, "f16");
}

const K32: KernelConfig = { weights: "f32", kv: "f32", HS: 16, NH: 4, NKV: 2 };

async function read(buf: GPUBuffer, n: number): Promise<Float32Array> {
  const gpu = await getGpu();
  return decodeFrom(await readBuffer(gpu, buf, n * 4), n, "f32");
}

Deno.test({ name: "embed.wgsl gathers the rows embedTokens() gathers", ignore }, async () => {
  const gpu = await getGpu(), rng = new Rng(1), V = 50, C = 24, T = 7;
  const table = randn(rng, V * C), ids = [3, 0, 49, 7, 7, 12, 1];
  const want = new Float32Array(T * C);
  embedTokens(want, table, ids, C, V);
  const x = storage(gpu, "x", T * C * 4);
  await runOps(gpu, [
    await embedOp(
      gpu,
      K32,
      x,
      storage(gpu, "ids", new Uint32Array(ids)),
      storage(gpu, "t", table),
      T,
      C,
    ),
  ]);
  assertAllClose(await read(x, T * C), want, { atol: 0, rtol: 0 }, "x");
});

Deno.test({ name: "rmsnorm.wgsl matches rmsnorm() within 1e-5 relative", ignore }, async () => {
  const gpu = await getGpu(), rng = new Rng(2), T = 5, C = 200;
  const x = randn(rng, T * C, 3), w = randn(rng, C);
  const want = new Float32Array(T * C);
  rmsnorm(want, x, w, T, C, 1e-5);
  const out = storage(gpu, "out", T * C * 4);
  await runOps(gpu, [
    await rmsnormOp(gpu, K32, out, storage(gpu, "x", x), storage(gpu, "w", w), T, C, 1e-5),
  ]);
  assertAllClose(await read(out, T * C), want, { atol: 1e-6, rtol: 1e-5 }, "out");
});

Deno.test({
  name: "gemv.wgsl and matmul.wgsl match a plain product, with bias and accumulation",
  ignore,
}, async (t) => {
  const gpu = await getGpu();
  for (
    const [M, N, K] of [[1, 37, 64], [3, 130, 96], [8, 9, 4], [13, 21, 40], [37, 70, 132], [
      65,
      64,
      256,
    ]] as const
  ) {
    for (const type of ["f32", "f16"] as const) {
      await t.step(storageStep(gpu, [type], `M=${M} N=${N} K=${K} ${type}`, async () => {
        const rng = new Rng(M * 1000 + N);
        const k = { ...K32, weights: type };
        const x = randn(rng, M * K),
          w = randn(rng, N * K, 0.1),
          b = randn(rng, N),
          y0 = randn(rng, M * N);
        const wr = type === "f16" ? viaF16(w) : w, br = type === "f16" ? viaF16(b) : b;
        const want = new Float32Array(M * N);
        matmulTSync(want, x, wr, M, K, N);
        for (let i = 0; i < M * N; i++) want[i] = want[i]! + br[i % N]! + y0[i]!;
        const y = storage(gpu, "y", y0);
        await runOps(gpu, [
          await matmulOp(
            gpu,
            k,
            y,
            storage(gpu, "x", x),
            storage(gpu, "w", encodeAs(w, type)),
            M,
            N,
            K,
            {
              accumulate: true,
              bias: storage(gpu, "b", encodeAs(b, type)),
            },
          ),
        ]);
        assertAllClose(await read(y, M * N), want, { atol: 1e-4, rtol: 1e-4 }, "y");
      }));
    }
  }
});

Deno.test(
  { name: "rope.wgsl matches applyRope() within 1e-5 at positions up to 4000", ignore },
  async () => {
    const gpu = await getGpu(), rng = new Rng(3);
    const cfg = tinyConfig(), HS = cfg.headDim, heads = 6, rows = 5, width = 8 * HS;
    const qkv = randn(rng, rows * width);
    const pos = [0, 1, 17, 999, 3999];
    const want = qkv.slice();
    const inv = ropeInvFreq(cfg);
    for (let r = 0; r < rows; r++) {
      const part = want.subarray(r * width, r * width + heads * HS);
      applyRope(part, [pos[r]!], inv, 1, heads, HS);
    }
    const buf = storage(gpu, "qkv", qkv);
    await runOps(gpu, [
      await ropeOp(
        gpu,
        { ...K32, HS },
        buf,
        storage(gpu, "pos", new Uint32Array(pos)),
        storage(gpu, "tab", ropeTable(inv, 4000)),
        rows,
        heads,
        width,
      ),
    ]);
    assertAllClose(await read(buf, rows * width), want, { atol: 1e-5, rtol: 1e-5 }, "qkv");
  },
);

Deno.test({ name: "swiglu.wgsl matches siluMul() within 1e-6 relative", ignore }, async () => {
  const gpu = await getGpu(), rng = new Rng(4), rows = 3, F = 172;
  const gu = randn(rng, rows * 2 * F, 4);
  const want = new Float32Array(rows * F);
  for (let r = 0; r < rows; r++) {
    siluMul(
      want.subarray(r * F),
      gu.subarray(r * 2 * F, r * 2 * F + F),
      gu.subarray(r * 2 * F + F),
      F,
    );
  }
  const act = storage(gpu, "act", rows * F * 4);
  await runOps(gpu, [await swigluOp(gpu, K32, act, storage(gpu, "gu", gu), rows, F)]);
  assertAllClose(await read(act, rows * F), want, { atol: 1e-6, rtol: 1e-5 }, "act");
});

Deno.test({
  name: "argmax.wgsl picks argmax()'s token, first index on ties, and advances positions",
  ignore,
}, async () => {
  const gpu = await getGpu(), rng = new Rng(5), rows = 3, V = 1000, cap = 8;
  const logits = randn(rng, rows * V);
  logits[1 * V + 10] = 50;
  logits[1 * V + 900] = 50; // tie: the first wins
  const want = [0, 1, 2].map((r) => argmax(logits, r * V, V));
  assert.equal(want[1], 10);
  const st = {
    tokens: storage(gpu, "tok", rows * 4),
    pos: storage(gpu, "pos", new Uint32Array([5, 9, 2])),
    base: storage(gpu, "base", new Uint32Array([3, 9, 0])),
    out: storage(gpu, "out", rows * cap * 4),
  };
  await runOps(gpu, [
    await argmaxOp(gpu, K32, storage(gpu, "l", logits), st, { rows, V, cap, decode: true, seq: 0 }),
  ]);
  const tok = new Uint32Array(await readBuffer(gpu, st.tokens, rows * 4));
  const pos = new Uint32Array(await readBuffer(gpu, st.pos, rows * 4));
  const out = new Uint32Array(await readBuffer(gpu, st.out, rows * cap * 4));
  assert.deepEqual([...tok], want);
  assert.deepEqual([...pos], [6, 10, 3]);
  assert.deepEqual([out[0 * cap + 2], out[1 * cap + 0], out[2 * cap + 2]], want);
});

/** Rule-grid plans (integer α, β = k/8) and streaming: the Q15 rule equals the CPU's. */
Deno.test("windowStartQ15() sees the keys MoaKvCache's float rule sees, for grid rules", () => {
  const rng = new Rng(6);
  for (let trial = 0; trial < 30; trial++) {
    const sink = [0, 4, 64][trial % 3]!, maxLength = 64 + Math.floor(rng.next() * 3000);
    const alphas = [[Math.round((rng.next() - 0.3) * 512)]];
    const betas = [[Math.floor(rng.next() * 9) / 8]];
    const plan: SparsePlan = { sink, alphas, betas };
    const layout = cacheLayout(plan, 1, 1, maxLength);
    const w = layout.window[0]!;
    for (let p = 0; p < maxLength; p++) {
      const span = Math.min(elasticSpan(alphas[0]![0]!, betas[0]![0]!, p + 1), w);
      const want = Math.max(sink, Math.floor(p - span) + 1);
      if (windowStartQ15(layout, 0, p) !== want) {
        assert.fail(
          `α=${alphas[0]![0]} β=${betas[0]![0]} sink ${sink} pos ${p}: ${
            windowStartQ15(layout, 0, p)
          } ≠ ${want}`,
        );
      }
    }
  }
});

/**
 * The cache and attention kernels against MoaKvCache: a prompt prefilled in chunks (so later
 * chunks read earlier ones from the ring), then single-token decode steps.
 */
Deno.test(
  { name: "kv_store + attn_prefill + attn_decode match MoaKvCache within 2e-5", ignore },
  async (t) => {
    const gpu = await getGpu();
    const cfg = tinyConfig({ numLayers: 1, numHeads: 4, numKvHeads: 2, headDim: 16 });
    const { numHeads: NH, numKvHeads: NKV, headDim: HS } = cfg;
    const plans: [string, SparsePlan | null][] = [
      ["dense", null],
      ["moa", { sink: 4, alphas: [[-8, 24]], betas: [[0.25, 0.125]] }],
      ["narrow", { sink: 2, alphas: [[5, 1]], betas: [[0, 0]] }],
      // the reference runtime's windows: 24 and 40 keys, whole blocks of 8 in prefill
      ["reference", {
        sink: 8,
        block: 8,
        spans: "reference",
        alphas: [[-8, 24]],
        betas: [[0.25, 0.125]],
      }],
    ];
    for (const [name, plan] of plans) {
      for (const kv of ["f32", "f16"] as const) {
        await t.step(storageStep(gpu, [kv], `${name}, ${kv} cache`, async () => {
          const rng = new Rng(7);
          const L = 1, N = 150, steps = 12, chunk = 64, maxLength = N + steps;
          const cpuPlan = plan ?? { sink: 0, alphas: [[maxLength, maxLength]], betas: [[0, 0]] };
          const cpu = new MoaKvCache(cfg, cpuPlan, maxLength);
          const k: KernelConfig = { weights: "f32", kv, HS, NH, NKV };
          const layout = cacheLayout(plan, L, NKV, maxLength);
          const bytes = layout.maxSlots * HS * (kv === "f16" ? 2 : 4);
          const cache: CacheBuffers = {
            K: storage(gpu, "K", bytes),
            V: storage(gpu, "V", bytes),
            heads: storage(gpu, "heads", headTable(layout)),
          };
          const width = (NH + 2 * NKV) * HS;
          const round = kv === "f16" ? viaF16 : (a: Float32Array) => a;
          const total = N + steps;
          // q, k, v rows; keys and values as the cache will store them
          const qkv = randn(rng, total * width);
          for (let r = 0; r < total; r++) {
            const kvPart = qkv.subarray(r * width + NH * HS, (r + 1) * width);
            kvPart.set(round(kvPart.slice()));
          }
          const split = (r0: number, T: number) => {
            const q = new Float32Array(T * NH * HS),
              kk = new Float32Array(T * NKV * HS),
              vv = new Float32Array(T * NKV * HS);
            for (let t = 0; t < T; t++) {
              const row = qkv.subarray((r0 + t) * width);
              q.set(row.subarray(0, NH * HS), t * NH * HS);
              kk.set(row.subarray(NH * HS, (NH + NKV) * HS), t * NKV * HS);
              vv.set(row.subarray((NH + NKV) * HS, width), t * NKV * HS);
            }
            return { q, kk, vv };
          };
          const outBuf = storage(gpu, "out", chunk * NH * HS * 4);
          const qkvBuf = storage(gpu, "qkv", chunk * width * 4);
          const posBuf = storage(gpu, "pos", chunk * 4);
          for (let P0 = 0; P0 < N; P0 += chunk) {
            const T = Math.min(chunk, N - P0);
            const { q, kk, vv } = split(P0, T);
            const want = new Float32Array(T * NH * HS);
            await cpu.attend(0, want, q, kk, vv, T, tsEngine);
            cpu.commit(T);
            writeBuffer(gpu, qkvBuf, 0, qkv.subarray(P0 * width, (P0 + T) * width));
            writeBuffer(
              gpu,
              posBuf,
              0,
              new Uint32Array(Array.from({ length: T }, (_, i) => P0 + i)),
            );
            const s = { layer: 0, sink: layout.sink, slotsPerSeq: layout.maxSlots, width, seq: 0 };
            await runOps(gpu, [
              await attnPrefillOp(gpu, k, outBuf, qkvBuf, cache, {
                ...s,
                T,
                P0,
                band: layout.band,
              }),
              await kvStoreOp(gpu, k, cache, qkvBuf, posBuf, {
                ...s,
                rows: T,
                decode: false,
                end: P0 + T,
              }),
            ]);
            assertAllClose(
              await read(outBuf, T * NH * HS),
              want,
              { atol: 2e-5, rtol: 2e-5 },
              `prefill chunk at ${P0}`,
            );
          }
          const splits = 3, keysPerSplit = 32;
          const scratch = {
            pm: storage(gpu, "pm", NH * splits * 4),
            pl: storage(gpu, "pl", NH * splits * 4),
            pacc: storage(gpu, "pacc", NH * splits * HS * 4),
          };
          for (let p = N; p < total; p++) {
            const { q, kk, vv } = split(p, 1);
            const want = new Float32Array(NH * HS);
            await cpu.attend(0, want, q, kk, vv, 1, tsEngine);
            cpu.commit(1);
            writeBuffer(gpu, qkvBuf, 0, qkv.subarray(p * width, (p + 1) * width));
            writeBuffer(gpu, posBuf, 0, new Uint32Array([p]));
            const s = { layer: 0, sink: layout.sink, slotsPerSeq: layout.maxSlots, width };
            // splits × keysPerSplit < keys seen by dense decode: use enough splits
            const need = Math.ceil((p + 1) / keysPerSplit);
            const sc = need > splits
              ? {
                pm: storage(gpu, "pm", NH * need * 4),
                pl: storage(gpu, "pl", NH * need * 4),
                pacc: storage(gpu, "pacc", NH * need * HS * 4),
              }
              : scratch;
            await runOps(gpu, [
              await kvStoreOp(gpu, k, cache, qkvBuf, posBuf, {
                ...s,
                rows: 1,
                decode: true,
                seq: 0,
                end: 0,
              }),
              ...await attnDecodeOps(gpu, k, outBuf, qkvBuf, posBuf, cache, sc, {
                ...s,
                B: 1,
                keysPerSplit,
                splits: Math.max(splits, need),
              }),
            ]);
            assertAllClose(
              await read(outBuf, NH * HS),
              want,
              { atol: 2e-5, rtol: 2e-5 },
              `decode at ${p}`,
            );
          }
        }));
      }
    }
  },
);
