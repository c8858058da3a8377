/**
 * The KV cache of each attention method on the CPU backend (`cacheOf` in runtime/methods.ts says
 * which), so every benchmark and command builds caches the same way, and the density a method
 * keeps at the end of a prompt ({@link promptDensity}), the one measure of a method's KV budget.
 *
 * @module
 */
import type { CpuModel } from "./forward.ts";
import type { KvCache } from "./kv_cache.ts";
import { H2oKvCache, MoaKvCache } from "./sparse_cache.ts";
import { SnapKvCache } from "./snapkv_cache.ts";
import { cacheOf, type MethodSpec, windowRules } from "../methods.ts";

/**
 * Makes the cache of one sequence that will grow to at most `maxLength` tokens, of which the
 * first `promptLength` are the prompt (when known: the budgets of H2O, SnapKV and Ada-KV are a
 * share of it, and SnapKV and Ada-KV compress once it is read).
 */
export type CacheFactory = (maxLength: number, promptLength?: number) => KvCache;

/**
 * The cache factory of a method.
 * @throws RangeError for moa or duo without rules
 */
export function cacheFactory(cpu: CpuModel, spec: MethodSpec): CacheFactory {
  const config = cpu.model.config;
  const density = spec.density;
  switch (cacheOf(spec.method)) {
    case "dense":
      return (maxLength) => cpu.newCache(maxLength);
    case "h2o":
      return (maxLength, promptLength) =>
        new H2oKvCache(config, { density, length: promptLength ?? maxLength });
    case "snapkv":
    case "adakv": {
      const allocation = cacheOf(spec.method) === "adakv" ? "adaptive" : "uniform";
      return (maxLength, promptLength) =>
        new SnapKvCache(config, {
          density,
          allocation,
          ...(promptLength === undefined ? {} : { promptLength }),
        }, maxLength);
    }
    case "streaming":
    case "moa":
    case "duo": {
      const plan = windowRules(config, spec)!;
      return (maxLength) => new MoaKvCache(config, plan, maxLength);
    }
  }
}

/**
 * The share of the dense KV cache a method keeps once a prompt is read (DESIGN.md §4): the bytes
 * of its cache, sized for the prompt, over the bytes of every key and value of the prompt, which
 * averages the kept entries over layers and kv heads. (A MoA or StreamingLLM cache sized for
 * later tokens also holds, in its ring, keys its window has already passed; they are not counted.)
 *
 * @param cpu the model
 * @param newCache the method's cache factory
 * @param prompt the prompt's tokens, read in steps of at most 2,048 as generation reads them
 * @returns kept entries over dense entries, in (0, 1]
 */
export async function promptDensity(
  cpu: CpuModel,
  newCache: CacheFactory,
  prompt: readonly number[],
): Promise<number> {
  const cache = newCache(prompt.length, prompt.length);
  for (let at = 0; at < prompt.length; at += 2048) {
    await cpu.step([{ cache, tokens: prompt.slice(at, at + 2048) }], "none");
  }
  const c = cpu.model.config;
  return cache.bytes() / (c.numLayers * c.numKvHeads * prompt.length * 2 * c.headDim * 4);
}
