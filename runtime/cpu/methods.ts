/**
 * One place that turns a method name (dense, moa, streaming, h2o) and its density into the KV
 * cache a sequence runs with, so every benchmark and command builds caches the same way.
 *
 * @module
 */
import type { ModelConfig } from "../model.ts";
import type { CpuModel } from "./forward.ts";
import type { KvCache } from "./kv_cache.ts";
import { H2oKvCache, MoaKvCache } from "./sparse_cache.ts";
import { type SpanSemantics, type SparsePlan, uniformPlan } from "../spans.ts";

/** Attention methods. */
export type AttentionMethod = "dense" | "moa" | "streaming" | "h2o";

/** Makes the cache of one sequence that will grow to at most `maxLength` tokens. */
export type CacheFactory = (maxLength: number) => KvCache;

/** A method with its settings. */
export interface MethodSpec {
  method: AttentionMethod;
  /** Share of the dense KV cache kept, in (0, 1]; ignored by dense. */
  density: number;
  /** Tokens every sparse head keeps from the start (streaming, moa). */
  sink: number;
  /** The per-head rules (moa only; they carry their own span semantics and block). */
  plan?: SparsePlan;
  /** Span semantics of streaming's windows (`runtime/spans.ts`). @default "per-query" */
  spans?: SpanSemantics;
  /** Block size in tokens, which streaming's `reference` semantics needs. */
  block?: number;
}

/**
 * StreamingLLM at a density, the project's one definition of it (DESIGN.md §4.1): every kv head
 * keeps `sink` tokens and a window of density·n − sink recent ones (α = −sink, β = density), so
 * the cache holds density·n tokens at every length n ≥ sink / density, the sink inside.
 *
 * @param config the model's shape
 * @param density share of the KV cache kept, in (0, 1]
 * @param sink leading tokens every head keeps
 * @returns the same rule for every (layer, kv head)
 * @throws {RangeError} when `density` is outside (0, 1]
 * @example
 * ```ts
 * import { streamingRules } from "./methods.ts";
 * import { tinyConfig } from "../random_model.ts";
 * const plan = streamingRules(tinyConfig(), 0.5, 4);
 * console.assert(plan.alphas[0]![0] === -4 && plan.betas[0]![0] === 0.5);
 * ```
 */
export function streamingRules(config: ModelConfig, density: number, sink: number): SparsePlan {
  if (!(density > 0 && density <= 1)) {
    throw new RangeError(`streamingRules(): density is ${density}; expected a number in (0, 1]`);
  }
  return uniformPlan(
    { layers: config.numLayers, kvHeads: config.numKvHeads },
    -sink,
    density,
    sink,
  );
}

/**
 * Tokens per step when scoring a whole text with a method's cache (perplexity). H2O evicts
 * between steps, so it is fed a block at a time: every query then sees at most the budget plus
 * 31 keys, as its decoding would (one step per window would be dense attention). The other
 * caches give the same result at any step size (under the `reference` span semantics, any step
 * of more than one token).
 */
export function scoringChunk(method: AttentionMethod): number {
  return method === "h2o" ? 32 : 1024;
}

/**
 * The rules a windowed method runs with, for the CPU cache and the GPU layout alike: streaming's
 * ({@link streamingRules} with the spec's span semantics and block) or moa's plan; null for dense
 * and h2o.
 *
 * @param config the model's shape
 * @param spec the method and its settings
 * @returns the rules, or null
 * @throws {RangeError} for moa without a plan
 */
export function windowRules(config: ModelConfig, spec: MethodSpec): SparsePlan | null {
  switch (spec.method) {
    case "streaming":
      return {
        ...streamingRules(config, spec.density, spec.sink),
        ...(spec.spans ? { spans: spec.spans } : {}),
        ...(spec.block ? { block: spec.block } : {}),
      };
    case "moa":
      if (!spec.plan) throw new RangeError("method moa needs a plan (see solver/plan.ts)");
      return spec.plan;
    default:
      return null;
  }
}

/**
 * The cache factory of a method.
 * @throws RangeError for moa without a plan
 */
export function cacheFactory(runner: CpuModel, spec: MethodSpec): CacheFactory {
  const config = runner.model.config;
  switch (spec.method) {
    case "dense":
      return (maxLength) => runner.newCache(maxLength);
    case "h2o":
      return (maxLength) => new H2oKvCache(config, { density: spec.density, length: maxLength });
    case "streaming":
    case "moa": {
      const plan = windowRules(config, spec)!;
      return (maxLength) => new MoaKvCache(config, plan, maxLength);
    }
  }
}
