/**
 * `deno task bench gpu`: decode and prefill speed and KV bytes of the WebGPU backend for dense,
 * MoA at 50% and 25% density and StreamingLLM at 50%, at each context, (a) at equal batch and
 * (b) at the largest batch whose KV cache fits a memory cap, for moa-tiny and a 7B-class shape.
 * Everything is measured in one run and printed as ratios to dense at the same context.
 *
 * - Decode tokens/s: wall clock over `decode` steps submitted in chunks of 32 (one host sync
 *   per chunk), after a warm-up chunk. The cache is treated as holding `context` tokens (its
 *   contents do not change the work), so long contexts need no prefill.
 * - Decode attention: GPU time of every layer's split-K attention + merge in one step, by
 *   timestamp queries, and the effective KV bandwidth = K and V bytes that step reads / time.
 * - Prefill tokens/s: one prompt of min(context, prefillMax) tokens, wall clock to a sync.
 * - On a software adapter (lavapipe) the contexts, shapes and cap are scaled down; the ratios
 *   are printed the same way.
 *
 * @module
 */
import { csvFormat } from "d3-dsv";
import { loadModel } from "../../runtime/hf.ts";
import type { ModelConfig } from "../../runtime/model.ts";
import type { SparsePlan } from "../../runtime/spans.ts";
import { streamingRules } from "../../runtime/methods.ts";
import { bytesOf, getGpu, type Gpu, type StorageType } from "../../runtime/gpu/device.ts";
import { GpuModel } from "../../runtime/gpu/model.ts";
import { GpuSession } from "../../runtime/gpu/session.ts";
import { writeFileAtomic } from "../../runtime/atomic.ts";
import { Rng } from "../../runtime/rng.ts";
import type { Model } from "../../runtime/model.ts";
import { randomModel } from "../../runtime/random_model.ts";
import { exportOnnx } from "../../runtime/onnx/export.ts";
import { OrtModel } from "../../runtime/onnx/ort.ts";
import { textTable } from "../table.ts";

/** Llama-2-7B's shape. */
export const LLAMA2_7B: ModelConfig = {
  modelType: "llama",
  vocabSize: 32000,
  hiddenSize: 4096,
  intermediateSize: 11008,
  numLayers: 32,
  numHeads: 32,
  numKvHeads: 32,
  headDim: 128,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 32768,
  tieWordEmbeddings: false,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

/**
 * The 7B-class shape scaled for a software adapter: Llama-2-7B's head size (128), multi-head
 * attention and vocabulary, with 2 layers of width 1024.
 */
export const LLAMA2_7B_MINI: ModelConfig = {
  ...LLAMA2_7B,
  hiddenSize: 1024,
  intermediateSize: 2752,
  numLayers: 2,
  numHeads: 8,
  numKvHeads: 8,
};

/** The methods compared, at their densities. */
export const GPU_BENCH_METHODS = [
  { method: "dense", density: 1 },
  { method: "moa", density: 0.5 },
  { method: "moa", density: 0.25 },
  { method: "streaming", density: 0.5 },
] as const;

/** The sink every sparse method keeps at context n: 64 tokens from 4k on, n/64 below. */
export function benchSink(n: number): number {
  return Math.min(64, Math.max(4, Math.round(n / 64)));
}

/**
 * A heterogeneous MoA plan that keeps `density` of the KV cache at length n: half the kv heads
 * local (a window of max(8, n/20) tokens), the other half wide enough that the mean kept span,
 * sink included, is density · n. α = span, β = 0 (the benchmark serves one length).
 *
 * @param c the shape
 * @param density share of the dense cache kept, in (0, 1]
 * @param n context length
 * @param sink leading tokens kept
 * @returns the plan
 */
export function benchPlan(
  c: ModelConfig,
  density: number,
  n: number,
  sink = benchSink(n),
): SparsePlan {
  const s = Math.min(sink, n);
  const local = Math.max(8, Math.round(n / 20));
  const meanSpan = density * n - s;
  const wide = Math.max(0, Math.min(n - s, Math.round(2 * meanSpan - local)));
  const alphas: number[][] = [], betas: number[][] = [];
  for (let l = 0; l < c.numLayers; l++) {
    alphas.push(Array.from({ length: c.numKvHeads }, (_, g) => ((l + g) % 2 === 0 ? local : wide)));
    betas.push(new Array<number>(c.numKvHeads).fill(0));
  }
  return { sink: s, alphas, betas };
}

/** One row of the benchmark. */
export interface GpuBenchRow {
  device: string;
  driver: string;
  shape: string;
  weights: StorageType;
  method: string;
  density: number;
  context: number;
  batch_mode: "equal" | "max";
  batch: number;
  kv_bytes: number;
  prefill_tokens: number;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  decode_vs_dense: number;
  attn_ms_per_step: number;
  attn_kv_gb_per_s: number;
  bytes_bound_ms_per_step: number;
  step_vs_bound: number;
}

/** Options of {@link benchGpu}. */
export interface GpuBenchOptions {
  /** context lengths @default 4k…32k on a GPU, 256 and 512 on a software adapter */
  contexts?: number[];
  /** which shapes @default both */
  shapes?: ("tiny" | "7b")[];
  /** decode steps timed @default 64 (8 on a software adapter) */
  decode?: number;
  /** KV bytes the max-batch mode may use @default 40 GiB (16 MiB on a software adapter) */
  kvCap?: number;
  /** batch of the equal-batch mode @default 1 */
  batch?: number;
  /** longest prefill prompt @default 1024 (256 on a software adapter) */
  prefillMax?: number;
  /** moa-tiny's folder */
  modelDir: string;
  /**
   * also time onnxruntime-web's WebGPU EP on the dense model (contexts ≤ this; 0 = skip)
   * @default 4096 (512 on a software adapter)
   */
  ortMaxContext?: number;
  /** progress lines */
  log?: (line: string) => void;
}

/** Peak DRAM bandwidth assumed for the bytes-read bound (H200: 4.8 TB/s). */
export const PEAK_BYTES_PER_S = 4.8e12;

/**
 * Decode tokens/s of onnxruntime-web's WebGPU EP on a dense model exported to ONNX: a prefill of
 * `context` tokens, then `decode` single-token runs (each returns logits to the host, as its API
 * does; the KV cache stays in GPU buffers).
 */
async function ortDecode(model: Model, context: number, decode: number): Promise<number> {
  const ort = await OrtModel.create(
    exportOnnx(model, { maxPositions: context + decode + 8 }),
    { executionProvider: "webgpu" },
  );
  try {
    const rng = new Rng(3);
    const V = model.config.vocabSize;
    await ort.prefill([Array.from({ length: context }, () => rng.int(3, V - 1))]);
    await ort.decode([5]); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < decode; i++) await ort.decode([rng.int(3, V - 1)]);
    return decode / ((performance.now() - t0) / 1000);
  } finally {
    await ort.release();
  }
}

async function timeDecode(s: GpuSession, context: number, steps: number): Promise<number> {
  s.startDecode(new Array(s.batch).fill(context));
  s.submitDecode(Math.min(8, steps)); // warm-up
  await s.sync();
  s.startDecode(new Array(s.batch).fill(context));
  const t0 = performance.now();
  for (let done = 0; done < steps; done += 32) s.submitDecode(Math.min(32, steps - done));
  await s.sync();
  return (performance.now() - t0) / 1000;
}

/**
 * Runs the benchmark.
 * @param opts sizes and the moa-tiny folder
 * @returns one row per (shape, method, context, batch mode)
 */
export async function benchGpu(opts: GpuBenchOptions): Promise<GpuBenchRow[]> {
  const gpu: Gpu = await getGpu();
  const soft = gpu.fallback;
  const log = opts.log ?? (() => {});
  const contexts = opts.contexts ?? (soft ? [256, 512] : [4096, 8192, 16384, 32768]);
  const decode = opts.decode ?? (soft ? 8 : 64);
  const kvCap = opts.kvCap ?? (soft ? 16 * 2 ** 20 : 40 * 2 ** 30);
  const prefillMax = opts.prefillMax ?? (soft ? 256 : 1024);
  const eqBatch = opts.batch ?? 1;
  const ortMax = opts.ortMaxContext ?? (soft ? 512 : 4096);
  const rows: GpuBenchRow[] = [];
  const f16: StorageType = gpu.f16 ? "f16" : "f32";
  for (const shape of opts.shapes ?? ["tiny", "7b"]) {
    const host = shape === "tiny" ? await loadModel(opts.modelDir) : null;
    const model = host
      ? await GpuModel.load(host, { weights: "f32", kv: "f32" })
      : await GpuModel.random(soft ? LLAMA2_7B_MINI : LLAMA2_7B, { weights: f16, kv: f16 });
    const c = model.config;
    const shapeName = shape === "tiny" ? "moa-tiny" : soft ? "llama2-7b-mini" : "llama2-7b";
    log(`${shapeName}: ${(model.weightBytes / 2 ** 20).toFixed(0)} MiB of weights on ${gpu.name}`);
    const rng = new Rng(7);
    for (const context of contexts) {
      const denseDecode = new Map<string, number>();
      for (const m of GPU_BENCH_METHODS) {
        const plan = m.method === "dense"
          ? null
          : m.method === "moa"
          ? benchPlan(c, m.density, context + decode + 2)
          : streamingRules(c, m.density, benchSink(context));
        const maxLength = context + decode + 2;
        // bytes per sequence, to size the max batch under the cap
        const probe = await GpuSession.create(model, {
          batch: 1,
          maxLength,
          plan,
          prefillChunk: 64,
        });
        const perSeq = probe.kvBytesAllocated();
        const limit = gpu.device.limits.maxStorageBufferBindingSize;
        const perLayer = Math.max(...probe.layout.slotsPerSeq) * c.headDim *
          bytesOf(model.kernels.kv);
        probe.destroy();
        const maxBatch = Math.max(
          1,
          Math.min(256, Math.floor(kvCap / perSeq), Math.floor(limit / perLayer)),
        );
        // prefill: one prompt
        const T = Math.min(context, prefillMax);
        const ps = await GpuSession.create(model, {
          batch: 1,
          maxLength: T + 1,
          plan: m.method === "moa" ? benchPlan(c, m.density, T + 1) : plan,
        });
        const prompt = Array.from({ length: T }, () => rng.int(3, c.vocabSize - 1));
        await ps.prefill(0, prompt.slice(0, Math.min(T, 64)));
        await ps.sync(); // compile and warm up
        const t0 = performance.now();
        await ps.prefill(0, prompt);
        await ps.sync();
        const prefillS = (performance.now() - t0) / 1000;
        ps.destroy();
        for (const mode of ["equal", "max"] as const) {
          const B = mode === "equal" ? eqBatch : maxBatch;
          log(`  ${m.method} ${m.density} context ${context} batch ${B} (${mode})`);
          const s = await GpuSession.create(model, { batch: B, maxLength, plan, prefillChunk: 64 });
          const seconds = await timeDecode(s, context, decode);
          const attnNs = await s.timeDecodeAttention();
          const kvRead = B * s.kvBytesReadAt(context + decode);
          const tps = (B * decode) / seconds;
          const key = mode;
          if (m.method === "dense") denseDecode.set(key, tps);
          const boundS = (model.weightBytes + kvRead) / PEAK_BYTES_PER_S;
          rows.push({
            device: gpu.name,
            driver: gpu.driver,
            shape: shapeName,
            weights: model.kernels.weights,
            method: m.method,
            density: m.density,
            context,
            batch_mode: mode,
            batch: B,
            kv_bytes: B * s.kvBytesAt(context + decode),
            prefill_tokens: T,
            prefill_tokens_per_s: T / prefillS,
            decode_tokens_per_s: tps,
            decode_vs_dense: tps / (denseDecode.get(key) ?? tps),
            attn_ms_per_step: attnNs === null ? NaN : attnNs / 1e6,
            attn_kv_gb_per_s: attnNs === null ? NaN : kvRead / attnNs,
            bytes_bound_ms_per_step: boundS * 1000,
            step_vs_bound: seconds / decode / boundS,
          });
          s.destroy();
        }
      }
      if (context <= ortMax && ortMax > 0) {
        // onnxruntime-web holds f32 weights from the host: the largest shape it loads is moa-tiny
        // or the scaled 7B shape (a full 7B in f32 exceeds ONNX's 2 GB protobuf limit)
        const ortModel = host ?? (soft || c.numLayers <= 4 ? randomModel(c, 1, 1) : null);
        if (ortModel) {
          log(`  onnxruntime-web webgpu dense context ${context} batch 1`);
          const tps = await ortDecode(ortModel, context, Math.min(decode, 32));
          rows.push({
            device: gpu.name,
            driver: gpu.driver,
            shape: shapeName,
            weights: "f32",
            method: "ort-webgpu-dense",
            density: 1,
            context,
            batch_mode: "equal",
            batch: 1,
            kv_bytes: c.numLayers * 2 * c.numKvHeads * context * c.headDim * 4,
            prefill_tokens: context,
            prefill_tokens_per_s: NaN,
            decode_tokens_per_s: tps,
            decode_vs_dense: tps / (denseDecode.get("equal") ?? tps),
            attn_ms_per_step: NaN,
            attn_kv_gb_per_s: NaN,
            bytes_bound_ms_per_step: NaN,
            step_vs_bound: NaN,
          });
        }
      }
    }
    model.destroy();
  }
  return rows;
}

/**
 * Writes rows as CSV (atomically).
 * @param path the file
 * @param rows benchmark rows
 */
export async function writeGpuBenchCsv(path: string, rows: GpuBenchRow[]): Promise<void> {
  await writeFileAtomic(
    path,
    csvFormat(rows as unknown as Record<string, unknown>[] as never) + "\n",
  );
}

/**
 * The GPU benchmark as a table of ratios, then the targets with the measured values.
 * @param rows benchmark rows
 * @returns text
 */
export function gpuReport(rows: GpuBenchRow[]): string {
  const f = (x: number, d = 1) =>
    !Number.isFinite(x)
      ? "—"
      : Math.abs(x) >= 10 ** -d || x === 0
      ? x.toFixed(d)
      : x.toPrecision(2);
  const table = textTable(rows.map((r) => ({
    shape: r.shape,
    method: r.method === "dense" || r.method.startsWith("ort")
      ? r.method
      : `${r.method} ${r.density}`,
    context: r.context,
    mode: r.batch_mode,
    batch: r.batch,
    "decode tok/s": f(r.decode_tokens_per_s),
    "× dense": f(r.decode_vs_dense, 2),
    "KV MiB": f(r.kv_bytes / 2 ** 20, 2),
    "attn ms/step": f(r.attn_ms_per_step, 3),
    "attn KV GB/s": f(r.attn_kv_gb_per_s, 1),
    "step/bound": f(r.step_vs_bound, 1),
    "prefill tok/s": f(r.prefill_tokens_per_s, 0),
  })));
  const pick = (p: (r: GpuBenchRow) => boolean) => rows.filter(p);
  const longest = (shape: string) =>
    Math.max(...pick((r) => r.shape === shape).map((r) => r.context));
  const lines: string[] = [`device: ${rows[0]?.device ?? "?"} ${rows[0]?.driver ?? ""}`, ""];
  for (const shape of new Set(rows.map((r) => r.shape))) {
    const n = rows.some((r) => r.shape === shape && r.context === 16384) ? 16384 : longest(shape);
    const get = (method: string, density: number, mode: string) =>
      rows.find((r) =>
        r.shape === shape && r.context === n && r.method === method && r.density === density &&
        r.batch_mode === mode
      );
    const dense = get("dense", 1, "equal"), moa = get("moa", 0.5, "equal");
    const denseMax = get("dense", 1, "max"), moaMax = get("moa", 0.5, "max");
    const ort = pick((r) => r.shape === shape && r.method === "ort-webgpu-dense")
      .sort((a, b) => b.context - a.context)[0];
    const moaAtOrt = ort &&
      rows.find((r) =>
        r.shape === shape && r.context === ort.context && r.method === "moa" &&
        r.density === 0.5 && r.batch_mode === "equal"
      );
    lines.push(`${shape} at context ${n}:`);
    if (dense) {
      lines.push(
        `  decode attention ${
          f(dense.attn_kv_gb_per_s)
        } GB/s effective KV bandwidth (target ≥ 2900 on an H200)`,
      );
      if (shape.startsWith("llama2-7b")) {
        lines.push(
          `  dense step ${
            f(dense.step_vs_bound, 2)
          }× its bytes-read bound at 4.8 TB/s (target ≤ 2 at batch 1, 4k)`,
        );
      } else {
        lines.push(
          `  dense decode ${
            f(dense.decode_tokens_per_s)
          } tok/s at batch ${dense.batch} (target ≥ 2000)`,
        );
      }
    }
    if (dense && moa) {
      lines.push(
        `  moa 50% / dense, equal batch: ${
          f(moa.decode_tokens_per_s / dense.decode_tokens_per_s, 2)
        }× (target ≥ 1.8 at 16k)`,
      );
    }
    if (denseMax && moaMax) {
      lines.push(
        `  moa 50% / dense, largest batch under the cap (${moaMax.batch} vs ${denseMax.batch}): ` +
          `${f(moaMax.decode_tokens_per_s / denseMax.decode_tokens_per_s, 2)}× (target ≥ 3)`,
      );
    }
    if (ort && moaAtOrt) {
      lines.push(
        `  moa 50% / onnxruntime-web WebGPU dense at context ${ort.context}: ` +
          `${f(moaAtOrt.decode_tokens_per_s / ort.decode_tokens_per_s, 1)}× (target ≥ 10)`,
      );
    }
  }
  return table + "\n\n" + lines.join("\n");
}
