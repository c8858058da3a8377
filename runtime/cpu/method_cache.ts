/**
 * The KV cache of each attention method on the CPU backend (`cacheOf` in runtime/methods.ts says
 * which), so every benchmark and command builds caches the same way.
 *
 * @module
 */
import type { CpuModel } from "./forward.ts";
import type { KvCache } from "./kv_cache.ts";
import { H2oKvCache, MoaKvCache } from "./sparse_cache.ts";
import { cacheOf, type MethodSpec, windowRules } from "../methods.ts";

/** Makes the cache of one sequence that will grow to at most `maxLength` tokens. */
export type CacheFactory = (maxLength: number) => KvCache;

/**
 * The cache factory of a method.
 * @throws RangeError for moa without a plan
 */
export function cacheFactory(cpu: CpuModel, spec: MethodSpec): CacheFactory {
  const config = cpu.model.config;
  switch (cacheOf(spec.method)) {
    case "dense":
      return (maxLength) => cpu.newCache(maxLength);
    case "h2o":
      return (maxLength) => new H2oKvCache(config, { density: spec.density, length: maxLength });
    case "streaming":
    case "moa": {
      const plan = windowRules(config, spec)!;
      return (maxLength) => new MoaKvCache(config, plan, maxLength);
    }
  }
}
