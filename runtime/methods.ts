/**
 * The attention methods, in one registry ({@link METHOD_TABLE}): every method an experiment file
 * or command can name, the KV cache it runs with, and, for MoA and its ablation variants, how its
 * plan is searched and calibrated (the paper's ablations; `makePlan` in solver/pipeline.ts takes
 * the recipe). The names experiment files accept (`METHODS`), the cache a cell builds
 * (`cacheFactory` in runtime/cpu/method_cache.ts), the windows of streaming and moa on either
 * backend ({@link windowRules}) and the plan settings of each MoA variant all derive from it.
 *
 * @module
 */
import type { ModelConfig } from "./model.ts";
import { type SpanSemantics, type SparsePlan, uniformPlan } from "./spans.ts";

/**
 * Every attention method: its name, the KV cache it runs with (`dense`: every key; `moa`: a
 * per-head sink + window from a plan; `streaming`: one sink + window for all heads; `h2o`: heavy
 * hitters; `snapkv` and `adakv`: the prompt's keys its last queries attend to most, with an equal
 * or an adaptive budget per head (runtime/cpu/snapkv_cache.ts); `duo`: DuoAttention's retrieval
 * and streaming heads, MoA rules from gates (runtime/duo.ts)), and for MoA's variants the plan
 * `search` space and `calibration` responses (DESIGN.md §3.2, §3.3, §4).
 */
export const METHOD_TABLE = [
  { name: "dense", cache: "dense" },
  { name: "moa", cache: "moa", plan: { search: "elastic", calibration: "model" } },
  { name: "streaming", cache: "streaming" },
  { name: "h2o", cache: "h2o" },
  { name: "moa-uniform", cache: "moa", plan: { search: "uniform", calibration: "model" } },
  { name: "moa-layer", cache: "moa", plan: { search: "layer", calibration: "model" } },
  { name: "moa-head", cache: "moa", plan: { search: "head", calibration: "model" } },
  { name: "moa-ref", cache: "moa", plan: { search: "elastic", calibration: "reference" } },
  { name: "moa-ctx", cache: "moa", plan: { search: "elastic", calibration: "context" } },
  { name: "snapkv", cache: "snapkv" },
  { name: "adakv", cache: "adakv" },
  { name: "duo", cache: "duo" },
] as const;

/** One entry of {@link METHOD_TABLE}. */
export type MethodEntry = (typeof METHOD_TABLE)[number];
/** An entry of a method that runs with a MoA plan. */
export type MoaEntry = Extract<MethodEntry, { plan: unknown }>;

/**
 * An attention method: full attention, MoA (or one of its ablation variants), StreamingLLM, H2O,
 * SnapKV, Ada-KV or DuoAttention.
 */
export type Method = MethodEntry["name"];
/** A method that runs with a MoA plan. */
export type MoaMethod = MoaEntry["name"];
/** The KV cache a method runs with. */
export type CacheKind = MethodEntry["cache"];
/** How a MoA variant's plan is made: its search space and calibration responses. */
export type PlanRecipe = MoaEntry["plan"];

/** The method names, in the registry's order. */
export const METHODS: readonly Method[] = METHOD_TABLE.map((m) => m.name);

function entryOf(m: Method): MethodEntry {
  const e = METHOD_TABLE.find((x) => x.name === m);
  if (!e) throw new RangeError(`no attention method named '${m}' (known: ${METHODS.join(", ")})`);
  return e;
}

/**
 * Whether a method runs with a MoA plan.
 *
 * @example
 * ```ts
 * import { isMoa } from "./methods.ts";
 * console.log(isMoa("moa-layer"), isMoa("streaming")); // true false
 * ```
 */
export function isMoa(m: Method): m is MoaMethod {
  return "plan" in entryOf(m);
}

/**
 * The KV cache a method runs with.
 *
 * @example
 * ```ts
 * import { cacheOf } from "./methods.ts";
 * console.log(cacheOf("moa-uniform"), cacheOf("h2o")); // moa h2o
 * ```
 */
export function cacheOf(m: Method): CacheKind {
  return entryOf(m).cache;
}

/**
 * How a MoA variant's plan is searched and calibrated.
 *
 * @example
 * ```ts
 * import { planRecipe } from "./methods.ts";
 * console.log(planRecipe("moa-ref")); // { search: "elastic", calibration: "reference" }
 * ```
 */
export function planRecipe(m: MoaMethod): PlanRecipe {
  const e = entryOf(m);
  if (!("plan" in e)) throw new RangeError(`method '${m}' runs without a MoA plan`);
  return e.plan;
}

/** A method with its settings. */
export interface MethodSpec {
  /** The method (its cache comes from the registry). */
  method: Method;
  /** Share of the dense KV cache kept, in (0, 1]; ignored by dense. */
  density: number;
  /** Tokens every sparse head keeps from the start (streaming, moa). */
  sink: number;
  /**
   * The per-head rules: a MoA method's plan (with its own span semantics and block), or
   * DuoAttention's rules at the cell's density and length (`duoRules` in runtime/duo.ts).
   */
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
 * import { tinyConfig } from "./random_model.ts";
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
export function scoringChunk(method: Method): number {
  return EVICTING.includes(cacheOf(method)) ? 32 : 1024;
}

/**
 * The caches that drop keys by what attention has seen (H2O after every step, SnapKV and Ada-KV
 * once the prompt is read, or after every step without a prompt length): perplexity feeds them
 * a block at a time ({@link scoringChunk}).
 */
const EVICTING: readonly CacheKind[] = ["h2o", "snapkv", "adakv"];

/**
 * Whether a method has a GPU cache (runtime/gpu/): dense, and the methods that run as per-head
 * windows (MoA and its variants, StreamingLLM, DuoAttention). H2O, SnapKV and Ada-KV run on the
 * CPU only.
 *
 * @example
 * ```ts
 * import { hasGpuCache } from "./methods.ts";
 * console.log(hasGpuCache("duo"), hasGpuCache("snapkv")); // true false
 * ```
 */
export function hasGpuCache(m: Method): boolean {
  return !EVICTING.includes(cacheOf(m));
}

/**
 * The rules a windowed method runs with, for the CPU cache and the GPU layout alike: streaming's
 * ({@link streamingRules} with the spec's span semantics and block), moa's plan or DuoAttention's
 * rules; null for the others.
 *
 * @param config the model's shape
 * @param spec the method and its settings
 * @returns the rules, or null
 * @throws {RangeError} for moa or duo without rules
 */
export function windowRules(config: ModelConfig, spec: MethodSpec): SparsePlan | null {
  switch (cacheOf(spec.method)) {
    case "streaming":
      return {
        ...streamingRules(config, spec.density, spec.sink),
        ...(spec.spans ? { spans: spec.spans } : {}),
        ...(spec.block ? { block: spec.block } : {}),
      };
    case "moa":
      if (!spec.plan) {
        throw new RangeError(`method ${spec.method} needs a plan (see solver/plan.ts)`);
      }
      return spec.plan;
    case "duo":
      if (!spec.plan) {
        throw new RangeError(`method duo needs its rules (duoRules in runtime/duo.ts)`);
      }
      return spec.plan;
    default:
      return null;
  }
}
