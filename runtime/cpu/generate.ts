/**
 * Greedy generation and per-token log-likelihood on top of `CpuModel`.
 *
 * @module
 */
import type { CpuModel } from "./forward.ts";
import type { KvCache } from "./kv_cache.ts";
import { argmax, logSoftmaxAt } from "./ops.ts";

/** Options of `generateGreedy`. */
export interface GenerateOptions {
  /** Most tokens to generate per prompt. */
  maxNewTokens: number;
  /** Generation of a sequence ends after it emits one of these (the stop token is kept). */
  stopTokens?: readonly number[];
  /** Prompt tokens per prefill step; longer prompts are fed in chunks. @default 2048 */
  prefillChunk?: number;
  /**
   * Makes the cache for each prompt, told the most tokens it will hold and the prompt's length.
   * @default the cpu's dense cache
   */
  newCache?: (maxLength: number, promptLength: number) => KvCache;
}

/**
 * Greedy decoding of a batch of prompts (of any lengths), decoding all unfinished sequences
 * together each step.
 *
 * @param cpu the model
 * @param prompts token ids per prompt, each non-empty
 * @param opts limits and stop tokens
 * @returns the generated ids per prompt (prompt excluded)
 */
export async function generateGreedy(
  cpu: CpuModel,
  prompts: number[][],
  opts: GenerateOptions,
): Promise<number[][]> {
  const V = cpu.model.config.vocabSize;
  const stop = new Set(opts.stopTokens ?? []);
  const chunk = opts.prefillChunk ?? 2048;
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new RangeError(`prompt ${i} is empty`);
  });
  const caches = prompts.map((p) =>
    opts.newCache?.(p.length + opts.maxNewTokens, p.length) ??
      cpu.newCache(p.length + opts.maxNewTokens)
  );
  // prefill: every prompt in chunks; the last chunk's logits give the first token
  const next: number[] = prompts.map(() => 0);
  const longest = Math.max(...prompts.map((p) => p.length));
  for (let at = 0; at < longest; at += chunk) {
    const live = prompts.map((p, i) => ({ p, i })).filter(({ p }) => p.length > at);
    const out = await cpu.step(
      live.map(({ p, i }) => ({ cache: caches[i]!, tokens: p.slice(at, at + chunk) })),
      "last",
    );
    live.forEach(({ p, i }, j) => {
      if (at + chunk >= p.length) next[i] = argmax(out[j]!, 0, V);
    });
  }
  const generated: number[][] = prompts.map(() => []);
  const active = new Set(prompts.map((_, i) => i));
  while (active.size > 0) {
    for (const i of [...active]) {
      generated[i]!.push(next[i]!);
      if (stop.has(next[i]!) || generated[i]!.length >= opts.maxNewTokens) active.delete(i);
    }
    if (active.size === 0) break;
    const ids = [...active];
    const out = await cpu.step(
      ids.map((i) => ({ cache: caches[i]!, tokens: [next[i]!] })),
      "last",
    );
    ids.forEach((i, j) => (next[i] = argmax(out[j]!, 0, V)));
  }
  return generated;
}

/**
 * log p(tokens[t+1] | tokens[0..t]) for every t, fed in chunks through one cache.
 *
 * @param cpu the model
 * @param tokens at least 2 token ids
 * @param chunk tokens per step @default 1024
 * @param cache the cache to use @default a new dense cache
 * @returns (T − 1) natural-log probabilities
 */
export async function tokenLogProbs(
  cpu: CpuModel,
  tokens: ArrayLike<number>,
  chunk = 1024,
  cache: KvCache = cpu.newCache(),
): Promise<Float64Array> {
  const V = cpu.model.config.vocabSize;
  const T = tokens.length;
  if (T < 2) throw new RangeError(`need at least 2 tokens, got ${T}`);
  const out = new Float64Array(T - 1);
  for (let at = 0; at < T - 1; at += chunk) {
    const n = Math.min(chunk, T - 1 - at);
    const ids = Array.from({ length: n }, (_, t) => tokens[at + t]!);
    const logits = (await cpu.step([{ cache, tokens: ids }], "all"))[0]!;
    for (let t = 0; t < n; t++) out[at + t] = logSoftmaxAt(logits, t * V, V, tokens[at + t + 1]!);
  }
  return out;
}

/** exp of the mean negative log-probability. */
export function perplexity(logProbs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < logProbs.length; i++) s -= logProbs[i]!;
  return Math.exp(s / logProbs.length);
}
