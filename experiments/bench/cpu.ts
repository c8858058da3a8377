/**
 * `deno task bench cpu`: prefill and decode speed of the CPU backend at 1k and 4k context for
 * every engine side by side, each figure beside the limit it is measured against: prefill's
 * effective GFLOP/s beside the same engine's 1024³ matmul GFLOP/s, decode's KV bytes read per
 * step (and the rate it reads them at) beside this machine's copy bandwidth. Runs are
 * interleaved (every engine and context once per round, the best of the rounds kept), so a
 * ratio is not skewed by a change of machine state (plain TypeScript, far slower, runs one
 * round). Then MoA at 50% against dense at the
 * longest context on the default engine, and the targets of the CPU issue with their ratios.
 *
 * @module
 */
import { CpuModel } from "../../runtime/cpu/forward.ts";
import type { Engine } from "../../runtime/cpu/engine.ts";
import { tsEngine } from "../../runtime/cpu/engine_ts.ts";
import { JaxEngine } from "../../runtime/cpu/engine_jax.ts";
import { AutoEngine, ENGINE_CHOICES, engineOf, fastEngine } from "../../runtime/cpu/engine_auto.ts";
import type { KvCache } from "../../runtime/cpu/kv_cache.ts";
import { loadModel } from "../../runtime/hf.ts";
import type { Model, ModelConfig } from "../../runtime/model.ts";
import { randomModel, tinyConfig } from "../../runtime/random_model.ts";
import { Rng } from "../../runtime/rng.ts";
import { MoaKvCache } from "../../runtime/cpu/sparse_cache.ts";
import { KvMemory } from "../../runtime/cpu/engine_simd.ts";
import { textTable } from "../table.ts";
import { benchPlan } from "./gpu.ts";

/**
 * PyTorch 2 on this machine's CPU (eager, `scaled_dot_product_attention`, moa-tiny, batch 1,
 * 2 threads, min of 4 interleaved runs, tokens/s), as the CPU issue measured it; PyTorch is not
 * installed here, so the figures are quoted, not rerun.
 */
export const PYTORCH_CPU = {
  prefill: { 1024: 51964, 4096: 27697 },
  decode: { 1024: 1437, 4096: 972 },
} as const;

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

/** GB/s of copying 64 MiB between two arrays (best of `reps`): the ceiling of a memory-bound step. */
export function copyGBps(reps = 5): number {
  const n = 16 * 2 ** 20, a = new Float32Array(n).fill(1), b = new Float32Array(n);
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    b.set(a);
    best = Math.min(best, performance.now() - t);
  }
  return (2 * 4 * n) / (best / 1000) / 1e9; // read + write
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
  method: string;
  context: number;
  prefill_tokens_per_s: number;
  prefill_gflops: number;
  /** The ceiling of prefill: the engine's 1024³ matmul GFLOP/s. */
  matmul_gflops: number;
  prefill_vs_matmul: number;
  decode_tokens_per_s: number;
  /** KV bytes the caches hold during decode: what one decode step reads. */
  kv_bytes_per_step: number;
  /** kv_bytes_per_step × decode steps per second. */
  kv_read_gbps: number;
  /** The ceiling of decode's reads: this machine's copy bandwidth. */
  copy_gbps: number;
  kv_read_vs_copy: number;
}

/** Prefill then decode of one sequence; seconds of each. */
async function timeOnce(
  cpu: CpuModel,
  cache: KvCache,
  tokens: number[],
  decode: number[],
): Promise<{ prefill: number; decode: number; kvBytes: number }> {
  let t0 = performance.now();
  await cpu.step([{ cache, tokens }], "last");
  const prefill = (performance.now() - t0) / 1000;
  let kv = 0;
  t0 = performance.now();
  for (const token of decode) {
    kv += cache.bytes();
    await cpu.step([{ cache, tokens: [token] }], "last");
  }
  return { prefill, decode: (performance.now() - t0) / 1000, kvBytes: kv / decode.length };
}

/** What one cell of the benchmark runs: an engine, a model, a cache kind, a context. */
interface Cell {
  name: string;
  engine: Engine;
  model: Model;
  method: "dense" | "moa 50%";
  context: number;
  matmul: number;
  best: { prefill: number; decode: number; kvBytes: number } | null;
}

/** Options of {@link benchCpu}. */
export interface CpuBenchOptions {
  modelDir: string;
  contexts: number[];
  /** Interleaved rounds; the best of them is kept. @default 4 */
  rounds?: number;
  /** Decode steps timed per cell. @default 32 */
  decode?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/**
 * Runs the whole CPU benchmark: every engine (native where it loads, onnxruntime-web, jax-js,
 * TypeScript) on moa-tiny at each context, a 1024-wide random model on the default engine, and
 * MoA at 50% beside dense at the longest context on the default engine.
 */
export async function benchCpu(opts: CpuBenchOptions): Promise<CpuBenchRow[]> {
  const log = opts.log ?? (() => {});
  const rounds = opts.rounds ?? 4, steps = opts.decode ?? 32;
  const engines: { engine: Engine; ceiling: Engine }[] = [];
  for (const choice of ENGINE_CHOICES) {
    try {
      const e = await engineOf(choice);
      engines.push({ engine: e, ceiling: e instanceof AutoEngine ? e.large : e });
    } catch (err) {
      log(`engine ${choice} does not start here: ${err}`);
    }
  }
  const jax = await JaxEngine.create();
  engines.splice(engines.length - 1, 0, {
    engine: new AutoEngine(tsEngine, jax, 1 << 20),
    ceiling: jax,
  });
  const fast = await fastEngine();
  const matmul = new Map<Engine, number>();
  for (const { engine, ceiling } of engines) {
    matmul.set(engine, await matmulGflops(ceiling, ceiling === tsEngine ? 512 : 1024));
    log(`${engine.name}: matmul ${matmul.get(engine)!.toFixed(1)} GFLOP/s`);
  }
  const copy = copyGBps();
  log(`copy bandwidth ${copy.toFixed(1)} GB/s`);
  const tiny = await loadModel(opts.modelDir);
  const mid = midModel();
  const longest = Math.max(...opts.contexts);
  const fastMatmul = matmul.get(engines.find((e) => e.engine.name === fast.name)?.engine ?? fast) ??
    await matmulGflops(fast);
  const cells: Cell[] = [];
  for (const { engine } of engines) {
    for (const context of opts.contexts) {
      cells.push({
        name: "moa-tiny",
        engine,
        model: tiny,
        method: "dense",
        context,
        matmul: matmul.get(engine)!,
        best: null,
      });
    }
  }
  cells.push({
    name: "moa-tiny",
    engine: fast,
    model: tiny,
    method: "moa 50%",
    context: longest,
    matmul: fastMatmul,
    best: null,
  });
  for (const context of opts.contexts) {
    cells.push({
      name: "mid-1024x2",
      engine: fast,
      model: mid,
      method: "dense",
      context,
      matmul: fastMatmul,
      best: null,
    });
  }
  const cpus = new Map<string, CpuModel>();
  const cpuOf = (c: Cell) => {
    const key = `${c.engine.name}|${c.name}`;
    let cpu = cpus.get(key);
    if (!cpu) cpus.set(key, cpu = new CpuModel(c.model, c.engine));
    return cpu;
  };
  for (const c of cells) await cpuOf(c).step([{ cache: cpuOf(c).newCache(), tokens: [1, 2, 3] }]);
  for (let round = 0; round < rounds; round++) {
    if (round > 0) {
      // the ceiling too is the best of the rounds, measured among them
      for (const { engine, ceiling } of engines) {
        if (ceiling === tsEngine) continue;
        matmul.set(engine, Math.max(matmul.get(engine)!, await matmulGflops(ceiling, 1024, 1)));
      }
    }
    for (const c of cells) {
      if (round > 0 && c.engine === tsEngine) continue; // minutes a round; one is enough
      const rng = new Rng(100 * round + c.context);
      const V = c.model.config.vocabSize;
      const tokens = Array.from({ length: c.context }, () => rng.int(3, V - 1));
      const decode = Array.from({ length: steps }, () => rng.int(3, V - 1));
      const n = c.context + steps;
      const cache = c.method === "dense"
        ? cpuOf(c).newCache(n)
        : new MoaKvCache(c.model.config, benchPlan(c.model.config, 0.5, n), n);
      const t = await timeOnce(cpuOf(c), cache, tokens, decode);
      c.best = c.best === null ? t : {
        prefill: Math.min(c.best.prefill, t.prefill),
        decode: Math.min(c.best.decode, t.decode),
        kvBytes: t.kvBytes,
      };
      log(
        `round ${round + 1}/${rounds}: ${c.engine.name} ${c.name} ${c.method} ${c.context}: ` +
          `prefill ${(c.context / t.prefill).toFixed(0)} tok/s, ` +
          `decode ${(steps / t.decode).toFixed(0)} tok/s`,
      );
    }
  }
  const ceilingOf = (c: Cell) =>
    matmul.get(engines.find((e) => e.engine.name === c.engine.name)?.engine ?? c.engine) ??
      c.matmul;
  return cells.map((c) => {
    const b = c.best!, gflops = prefillFlops(c.model.config, c.context) / b.prefill / 1e9;
    const decodeTps = steps / b.decode, kvRead = (b.kvBytes * decodeTps) / 1e9;
    return {
      model: c.name,
      engine: c.engine.name,
      method: c.method,
      context: c.context,
      prefill_tokens_per_s: c.context / b.prefill,
      prefill_gflops: gflops,
      matmul_gflops: ceilingOf(c),
      prefill_vs_matmul: gflops / ceilingOf(c),
      decode_tokens_per_s: decodeTps,
      kv_bytes_per_step: b.kvBytes,
      kv_read_gbps: kvRead,
      copy_gbps: copy,
      kv_read_vs_copy: kvRead / copy,
    };
  });
}

/** One row of the decode-attention comparison: one kv head's queries over S keys. */
export interface AttentionKernelRow {
  kernel: string;
  keys: number;
  /** Microseconds per call (best of the rounds). */
  us: number;
  /** K and V bytes read per call / time. */
  gbps: number;
}

/**
 * Decode attention of one kv head's group (moa-tiny's shape: 2 query heads, head size 32) over S
 * keys in place, by each candidate: the scalar TypeScript loops, the SIMD kernel (both
 * `KvMemory.attend`, engine_simd.ts), and onnxruntime-node's GroupQueryAttention for the whole
 * layer's 2 kv heads divided by 2 (`NativeEngine.attention` with one query). The kernel the
 * caches use was picked from this table.
 */
export async function benchDecodeAttention(
  contexts: number[],
  native: Engine | null,
  rounds = 5,
): Promise<AttentionKernelRow[]> {
  const G = 2, HS = 32, NKV = 2, rows: AttentionKernelRow[] = [];
  const r = new Rng(7);
  for (const S of contexts) {
    const q = Float32Array.from({ length: NKV * G * HS }, () => r.normal());
    const out = new Float32Array(NKV * G * HS), runs = Int32Array.of(0, S);
    const kernels: [string, () => Promise<void> | void, number][] = [];
    for (const simd of [false, true]) {
      const m = new KvMemory({
        layers: 1,
        floats: S * HS,
        group: G,
        headDim: HS,
        maxKeys: S,
        simd,
      });
      m.k[0]!.set(Float32Array.from({ length: S * HS }, () => r.normal()));
      m.v[0]!.set(Float32Array.from({ length: S * HS }, () => r.normal()));
      kernels.push([
        simd ? "SIMD kernel (wasm)" : "scalar TypeScript",
        () => m.attend(0, out, 0, q, 0, runs, 1),
        1,
      ]);
    }
    if (native) {
      const K = Float32Array.from({ length: NKV * S * HS }, () => r.normal());
      const V = Float32Array.from({ length: NKV * S * HS }, () => r.normal());
      const dims = { T: 1, S, NH: NKV * G, NKV, HS, first: S - 1 };
      kernels.push([
        `${native.name} GroupQueryAttention`,
        () => native.attention(out, q, K, V, dims),
        NKV,
      ]);
    }
    for (const [kernel, run, heads] of kernels) {
      const calls = Math.max(3, Math.round(2e5 / S));
      let best = Infinity;
      for (let i = 0; i < rounds; i++) {
        const t = performance.now();
        for (let c = 0; c < calls; c++) await run();
        best = Math.min(best, (performance.now() - t) / calls / heads);
      }
      rows.push({ kernel, keys: S, us: best * 1000, gbps: (2 * S * HS * 4) / (best / 1000) / 1e9 });
    }
  }
  return rows;
}

/** One line of the targets table. */
export interface CpuTarget {
  target: string;
  measured: number;
  against: number;
  ratio: number;
  goal: number;
  met: boolean;
}

/**
 * The CPU issue's targets on the default engine: prefill ≥ 0.7× and decode ≥ 1.0× PyTorch's
 * figures at 1k and 4k ({@link PYTORCH_CPU}), MoA 50% decode ≥ 1.6× dense at the longest context.
 */
export function cpuTargets(rows: CpuBenchRow[], engine: string): CpuTarget[] {
  const out: CpuTarget[] = [];
  const row = (method: string, context: number) =>
    rows.find((r) =>
      r.model === "moa-tiny" && r.engine === engine && r.method === method && r.context === context
    );
  for (const [kind, goal] of [["prefill", 0.7], ["decode", 1]] as const) {
    for (const [ctx, torch] of Object.entries(PYTORCH_CPU[kind])) {
      const r = row("dense", Number(ctx));
      if (!r) continue;
      const measured = kind === "prefill" ? r.prefill_tokens_per_s : r.decode_tokens_per_s;
      out.push({
        target: `${kind} ${ctx} tok/s ≥ ${goal}× PyTorch`,
        measured,
        against: torch,
        ratio: measured / torch,
        goal,
        met: measured / torch >= goal,
      });
    }
  }
  const moa = rows.find((r) =>
    r.model === "moa-tiny" && r.engine === engine && r.method !== "dense"
  );
  const dense = moa && row("dense", moa.context);
  if (moa && dense) {
    const ratio = moa.decode_tokens_per_s / dense.decode_tokens_per_s;
    out.push({
      target: `moa 50% decode ≥ 1.6× dense at ${moa.context}`,
      measured: moa.decode_tokens_per_s,
      against: dense.decode_tokens_per_s,
      ratio,
      goal: 1.6,
      met: ratio >= 1.6,
    });
  }
  return out;
}

/** The benchmark's rows, the decode-attention kernels and the targets as text tables. */
export function cpuReport(
  rows: CpuBenchRow[],
  engine: string,
  kernels: AttentionKernelRow[] = [],
): string {
  const fmt = (x: number, digits = 0) => x.toFixed(digits);
  const table = rows.map((r) => ({
    model: r.model,
    engine: r.engine,
    method: r.method,
    context: r.context,
    "prefill tok/s": fmt(r.prefill_tokens_per_s),
    "prefill GFLOP/s": fmt(r.prefill_gflops, 1),
    "matmul GFLOP/s": fmt(r.matmul_gflops, 1),
    "prefill/matmul": fmt(r.prefill_vs_matmul, 2),
    "decode tok/s": fmt(r.decode_tokens_per_s),
    "KV MB/step": fmt(r.kv_bytes_per_step / 1e6, 2),
    "KV GB/s": fmt(r.kv_read_gbps, 1),
    "copy GB/s": fmt(r.copy_gbps, 1),
    "KV/copy": fmt(r.kv_read_vs_copy, 2),
  }));
  const targets = cpuTargets(rows, engine).map((t) => ({
    target: t.target,
    measured: fmt(t.measured),
    against: fmt(t.against),
    ratio: fmt(t.ratio, 2),
    met: t.met ? "met" : "missed",
  }));
  const attention = kernels.map((k) => ({
    "decode attention, one kv head (2 queries × 32)": k.kernel,
    keys: k.keys,
    "µs": fmt(k.us, 1),
    "K+V GB/s": fmt(k.gbps, 1),
  }));
  const parts = [textTable(table)];
  if (attention.length) parts.push(textTable(attention));
  parts.push(
    `targets on ${engine} (PyTorch figures quoted from the CPU issue; PyTorch is not ` +
      `installed here)\n${textTable(targets)}`,
  );
  return parts.join("\n\n");
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
