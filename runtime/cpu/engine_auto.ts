/**
 * Choosing an engine: {@link AutoEngine} sends each call to the engine that is faster for its
 * size, and {@link fastEngine} is the fastest combination available here.
 *
 * @module
 */
import { allFloat32 } from "../model.ts";
import { type Engine, envFlag, type LayerKernels, preparedOnce, productKernels } from "./engine.ts";
import { OrtEngine } from "./engine_ort.ts";
import { tsEngine } from "./engine_ts.ts";

/**
 * Sends calls of at least `threshold` multiply-adds to the fast engine and the rest to plain
 * TypeScript. The default threshold (2^17) is where the two cost the same on the 2-core
 * development machines: onnxruntime pays about 0.13 ms per call, TypeScript runs about
 * 1.5 GFLOP/s.
 */
export class AutoEngine implements Engine {
  readonly name: string;
  /**
   * Routes each call by its size.
   * @param small the engine for calls below `threshold` multiply-adds
   * @param large the engine for the others
   * @param threshold multiply-adds at which `large` takes over
   */
  constructor(readonly small: Engine, readonly large: Engine, readonly threshold = 1 << 17) {
    this.name = `${large.name}+${small.name}`;
  }

  /** The engine for a call of `work` multiply-adds. */
  #for(work: number): Engine {
    return work >= this.threshold ? this.large : this.small;
  }

  /** out = x · wᵀ on the engine its size picks. */
  readonly matmulT: Engine["matmulT"] = (out, x, w, M, K, N, constant = false) =>
    this.#for(M * K * N).matmulT(out, x, w, M, K, N, constant);

  /** out = a · b on the engine its size picks. */
  readonly matmul: Engine["matmul"] = (out, a, b, M, K, N) =>
    this.#for(M * K * N).matmul(out, a, b, M, K, N);

  /** Attention on the engine its size (T·NH·S·HS) picks. */
  readonly attention: Engine["attention"] = (out, q, k, v, d) =>
    this.#for(d.T * d.NH * d.S * d.HS).attention(out, q, k, v, d);

  /** Range attention on the engine its size (G·T·nk·HS) picks. */
  readonly rangeAttention: Engine["rangeAttention"] = (out, q, k, v, ranges, acc, d) =>
    this.#for(d.G * d.T * d.nk * d.HS).rangeAttention(out, q, k, v, ranges, acc, d);

  /**
   * The layers. When the large engine runs a whole block as one call (`Engine.blockKernels`:
   * the native sessions), each block goes to the engine its multiply-adds pick; otherwise the
   * layers are this engine's fused products, each routed by its own size (a call to a
   * WebAssembly engine costs the same whatever the block, so a small product stays in
   * TypeScript).
   */
  readonly prepare: Engine["prepare"] = preparedOnce((model): LayerKernels => {
    // a model with half-precision matrices gets products from every engine (engine_native.ts)
    if (!this.large.blockKernels || !allFloat32(model)) return productKernels(this, model, true);
    const small = this.small.prepare(model), large = this.large.prepare(model);
    const { hiddenSize: C, numHeads: NH, numKvHeads: NKV, headDim: HS } = model.config;
    const F = model.config.intermediateSize, V = model.config.vocabSize;
    const inputs = C * (NH + 2 * NKV) * HS; // per row
    const on = (work: number) => (work >= this.threshold ? large : small);
    return {
      attentionInputs: (l, x, positions, T, q, k, v) =>
        on(T * inputs).attentionInputs(l, x, positions, T, q, k, v),
      attentionOutput: (l, x, att, T, next) =>
        on(T * C * (NH * HS + 3 * F) + ("q" in next ? T * inputs : next.rows.length * C * V))
          .attentionOutput(l, x, att, T, next),
    };
  });
}

/** The engines `MOA_CPU_ENGINE` can force (tests and benchmarks run each of them). */
export const ENGINE_CHOICES = ["native", "ort-wasm", "ts"] as const;

/** One of {@link ENGINE_CHOICES}. */
export type EngineChoice = typeof ENGINE_CHOICES[number];

/** Multiply-adds at which the native engine takes a call from TypeScript (about 20 µs a call). */
const NATIVE_THRESHOLD = 1 << 14;

/**
 * The engine of a choice: `native` is onnxruntime-node (TypeScript for the smallest calls),
 * `ort-wasm` onnxruntime-web's WebAssembly backend (TypeScript for small calls), `ts` plain
 * TypeScript. Throws when the choice cannot start here.
 */
export async function engineOf(choice: EngineChoice): Promise<Engine> {
  if (choice === "ts") return tsEngine;
  if (choice === "ort-wasm") return new AutoEngine(tsEngine, await OrtEngine.create());
  const { NativeEngine } = await import("./engine_native.ts");
  return new AutoEngine(tsEngine, await NativeEngine.create(), NATIVE_THRESHOLD);
}

/** `MOA_CPU_ENGINE` when it names an engine; throws on another value. */
function forcedEngine(): EngineChoice | null {
  const v = envFlag("MOA_CPU_ENGINE");
  if (v === undefined || v === "") return null;
  if (!(ENGINE_CHOICES as readonly string[]).includes(v)) {
    throw new RangeError(
      `MOA_CPU_ENGINE is '${v}'; expected one of ${ENGINE_CHOICES.join(", ")}`,
    );
  }
  return v as EngineChoice;
}

let fastest: Promise<Engine> | null = null;

/**
 * The fastest engine available here: onnxruntime-node where its binary loads, else
 * onnxruntime-web's WebAssembly backend, else TypeScript alone (each with TypeScript for the
 * smallest calls). `MOA_CPU_ENGINE=native|ort-wasm|ts` forces one, and fails if it cannot start.
 */
export function fastEngine(): Promise<Engine> {
  fastest ??= (async () => {
    const forced = forcedEngine();
    if (forced) return await engineOf(forced);
    for (const choice of ["native", "ort-wasm"] as const) {
      try {
        return await engineOf(choice);
      } catch {
        // not available here: try the next one
      }
    }
    return tsEngine;
  })();
  return fastest;
}
