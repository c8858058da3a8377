/**
 * `deno task bench cpu`: prefill and decode speed of the CPU backend at 1k and 4k context, with
 * the effective GFLOP/s of prefill printed beside the same engine's 1024³ matmul GFLOP/s,
 * all measured in one run so the ratio is not skewed by a different machine state.
 *
 * @module
 */
import { CpuModel } from "../../runtime/cpu/forward.ts";
import type { Engine } from "../../runtime/cpu/engine.ts";
import { tsEngine } from "../../runtime/cpu/engine_ts.ts";
import { OrtEngine } from "../../runtime/cpu/engine_ort.ts";
import { JaxEngine } from "../../runtime/cpu/engine_jax.ts";
import { AutoEngine, fastEngine } from "../../runtime/cpu/engine_auto.ts";
import { loadModel } from "../../runtime/hf.ts";
import type { Model, ModelConfig } from "../../runtime/model.ts";
import { randomModel, tinyConfig } from "../../runtime/random_model.ts";
import { Rng } from "../../runtime/rng.ts";
import { MoaKvCache } from "../../runtime/cpu/sparse_cache.ts";
import { benchPlan } from "./gpu.ts";

/** GFLOP/s of one engine on an n×n×n product (best of `reps`). */
export async function matmulGflops(e: Engine, n = 1024, reps = 3): Promise<number> {
  const r = new Rng(1);
  const a = Float32Array.from({ length: n * n }, () => r.normal());
  const b = Float32Array.from({ length: n * n }, () => r.normal());
  const out = new Float32Array(n * n);
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await e.matmul(out, a, b, n, n, n);
    best = Math.min(best, performance.now() - t);
  }
  return (2 * n ** 3) / (best / 1000) / 1e9;
}

/** Floating-point operations of a prefill of T tokens from an empty cache (last logits only). */
export function prefillFlops(c: ModelConfig, T: number): number {
  const { hiddenSize: C, numHeads: NH, numKvHeads: NKV, headDim: HS, intermediateSize: F } = c;
  const linear = C * NH * HS * 2 + C * NKV * HS * 2 + 3 * C * F; // q, o, k, v, gate, up, down
  const attention = 2 * NH * HS * (T * (T + 1)) / 2; // QKᵀ and PV over the causal triangle, per layer
  return 2 * T * linear * c.numLayers + 2 * attention * c.numLayers + 2 * C * c.vocabSize;
}

/** One row of the benchmark table. */
export interface CpuBenchRow {
  model: string;
  engine: string;
  context: number;
  prefill_tokens_per_s: number;
  prefill_gflops: number;
  matmul_gflops: number;
  prefill_vs_matmul: number;
  decode_tokens_per_s: number;
}

/** Measures prefill then decode at each context length. */
export async function benchModel(
  name: string,
  model: Model,
  engine: Engine,
  matmul: number,
  contexts: number[],
  decodeSteps = 16,
): Promise<CpuBenchRow[]> {
  const cpu = new CpuModel(model, engine);
  const V = model.config.vocabSize;
  const rng = new Rng(3);
  const rows: CpuBenchRow[] = [];
  await cpu.step([{ cache: cpu.newCache(), tokens: [1, 2, 3] }]); // warm-up
  for (const T of contexts) {
    const tokens = Array.from({ length: T }, () => rng.int(3, V - 1));
    const cache = cpu.newCache(T + decodeSteps);
    let t0 = performance.now();
    await cpu.step([{ cache, tokens }], "last");
    const prefill = (performance.now() - t0) / 1000;
    t0 = performance.now();
    for (let i = 0; i < decodeSteps; i++) {
      await cpu.step([{ cache, tokens: [rng.int(3, V - 1)] }], "last");
    }
    const decode = (performance.now() - t0) / 1000;
    const gflops = prefillFlops(model.config, T) / prefill / 1e9;
    rows.push({
      model: name,
      engine: engine.name,
      context: T,
      prefill_tokens_per_s: T / prefill,
      prefill_gflops: gflops,
      matmul_gflops: matmul,
      prefill_vs_matmul: gflops / matmul,
      decode_tokens_per_s: decodeSteps / decode,
    });
  }
  return rows;
}

/** A mid-sized LLaMA shape (1024 wide, GQA 16/4, 32k vocabulary) with random weights. */
export function midModel(): Model {
  return randomModel(
    tinyConfig({
      vocabSize: 32000,
      hiddenSize: 1024,
      intermediateSize: 2816,
      numLayers: 2,
      numHeads: 16,
      numKvHeads: 4,
      headDim: 64,
      maxPositionEmbeddings: 8192,
    }),
    1,
  );
}

/** Runs the whole CPU benchmark. */
export async function benchCpu(
  opts: { modelDir: string; contexts: number[] },
): Promise<CpuBenchRow[]> {
  const ort = await OrtEngine.create();
  const jax = await JaxEngine.create();
  const engines = [
    { engine: new AutoEngine(tsEngine, ort), matmul: await matmulGflops(ort) },
    { engine: new AutoEngine(tsEngine, jax, 1 << 20), matmul: await matmulGflops(jax) },
  ];
  const tsMatmul = await matmulGflops(tsEngine, 512, 1);
  console.error(
    `1024³ matmul: ${ort.name} ${engines[0]!.matmul.toFixed(1)} GFLOP/s, ${jax.name} ${
      engines[1]!.matmul.toFixed(1)
    } GFLOP/s; ts (512³) ${tsMatmul.toFixed(1)} GFLOP/s`,
  );
  const tiny = await loadModel(opts.modelDir);
  const rows: CpuBenchRow[] = [];
  for (const { engine, matmul } of engines) {
    rows.push(...await benchModel("moa-tiny", tiny, engine, matmul, opts.contexts));
  }
  rows.push(
    ...await benchModel(
      "mid-1024x2",
      midModel(),
      engines[0]!.engine,
      engines[0]!.matmul,
      opts.contexts,
    ),
  );
  return rows;
}

/** One row of `bench cpu-decode`. */
export interface CpuDecodeRow {
  model: string;
  method: string;
  density: number;
  context: number;
  batch: number;
  decode_tokens_per_s: number;
  decode_vs_dense: number;
  kv_bytes: number;
  kv_vs_dense: number;
}

/**
 * `deno task bench cpu-decode`: decode tokens/s and KV bytes of dense vs MoA at 50% and 25%
 * density at one context, side by side in one run, on the CPU backend. The MoA plans are
 * heterogeneous (half the kv heads local, half wide; {@link benchPlan}) with the requested
 * density at the context; the cache holds `context` prompt tokens before decoding starts.
 *
 * @param opts model folder, context, decode steps, batch
 * @returns one row per method
 */
export async function benchCpuDecode(
  opts: { modelDir: string; context: number; decode?: number; batch?: number },
): Promise<CpuDecodeRow[]> {
  const model = await loadModel(opts.modelDir);
  const cpu = new CpuModel(model, await fastEngine());
  const c = model.config, V = c.vocabSize;
  const steps = opts.decode ?? 32, B = opts.batch ?? 1, n = opts.context;
  const rng = new Rng(5);
  const prompts = Array.from(
    { length: B },
    () => Array.from({ length: n }, () => rng.int(3, V - 1)),
  );
  const rows: CpuDecodeRow[] = [];
  for (const [method, density] of [["dense", 1], ["moa", 0.5], ["moa", 0.25]] as const) {
    const plan = method === "moa" ? benchPlan(c, density, n + steps) : null;
    const caches = prompts.map(() =>
      plan ? new MoaKvCache(c, plan, n + steps) : cpu.newCache(n + steps)
    );
    for (let at = 0; at < n; at += 2048) {
      await cpu.step(
        prompts.map((p, b) => ({ cache: caches[b]!, tokens: p.slice(at, at + 2048) })),
        "none",
      );
    }
    await cpu.step(caches.map((cache) => ({ cache, tokens: [5] })), "last"); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < steps - 1; i++) {
      await cpu.step(caches.map((cache) => ({ cache, tokens: [rng.int(3, V - 1)] })), "last");
    }
    const tps = (B * (steps - 1)) / ((performance.now() - t0) / 1000);
    const kv = caches.reduce((a, k) => a + k.bytes(), 0);
    const dense = rows[0];
    rows.push({
      model: opts.modelDir.split("/").filter((x) => x).pop() ?? opts.modelDir,
      method,
      density,
      context: n,
      batch: B,
      decode_tokens_per_s: tps,
      decode_vs_dense: dense ? tps / dense.decode_tokens_per_s : 1,
      kv_bytes: kv,
      kv_vs_dense: dense ? kv / dense.kv_bytes : 1,
    });
  }
  return rows;
}
