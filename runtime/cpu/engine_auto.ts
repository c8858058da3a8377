/**
 * Choosing an engine: {@link AutoEngine} sends each call to the engine that is faster for its
 * size, and {@link fastEngine} is the fastest combination available here.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
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
}

let fastest: Promise<Engine> | null = null;

/**
 * The fastest engine available here: onnxruntime-web for large work with TypeScript for small
 * calls, or TypeScript alone when onnxruntime-web cannot start.
 */
export function fastEngine(): Promise<Engine> {
  fastest ??= OrtEngine.create().then(
    (o) => new AutoEngine(tsEngine, o) as Engine,
    () => tsEngine,
  );
  return fastest;
}
