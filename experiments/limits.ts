/**
 * Lengths a model can serve. A prompt past the model's trained context still runs (RoPE has no
 * hard end, and measuring how a method extrapolates is a fair question: the MoA paper reports
 * retrieval past the trained length), so it gets a warning; a length far past it, or one whose KV
 * cache cannot fit in the machine's memory, is a mistake and is refused before anything runs.
 *
 * @module
 */
import { InputError } from "../runtime/errors.ts";
import type { ModelConfig } from "../runtime/model.ts";

/**
 * How many times its context a prompt may be before it is refused: far enough for the MoA
 * paper's extrapolation (its effective context reaches 3.9× the dense model's), close enough to
 * stop a typo such as `10000000` before it runs for days.
 */
export const EXTRAPOLATION_LIMIT = 8;

/**
 * The context a model was trained for, in tokens, with how it was derived for messages:
 * `max_position_embeddings`, times the factor of a `linear` `rope_scaling` (Hugging Face keeps
 * `max_position_embeddings` at the base model's length for linear scaling, e.g. Vicuna-7B-16k:
 * 4,096 × 4). With `llama3` scaling `max_position_embeddings` is already the extended length.
 *
 * @example
 * ```ts
 * import { contextLength } from "./limits.ts";
 * import { tinyConfig } from "../runtime/random_model.ts";
 * const c = tinyConfig({ maxPositionEmbeddings: 4096, ropeScaling: { type: "linear", factor: 4 } });
 * console.log(contextLength(c).tokens); // 16384
 * ```
 */
export function contextLength(config: ModelConfig): { tokens: number; source: string } {
  const max = config.maxPositionEmbeddings;
  const s = config.ropeScaling;
  if (s?.type === "linear") {
    return {
      tokens: Math.floor(max * s.factor),
      source: `max_position_embeddings ${max} × rope_scaling factor ${s.factor} in config.json`,
    };
  }
  return { tokens: max, source: `max_position_embeddings ${max} in config.json` };
}

/**
 * Checks a prompt length against the model's context.
 *
 * @param config the model's config
 * @param length the prompt length in tokens
 * @param what names the length in messages, e.g. `lengths[1]: 16384 tokens`
 * @returns null within the context; past it (up to {@link EXTRAPOLATION_LIMIT} times), a
 *   warning line to print before running
 * @throws InputError beyond {@link EXTRAPOLATION_LIMIT} times the context
 */
export function checkLength(config: ModelConfig, length: number, what: string): string | null {
  const { tokens, source } = contextLength(config);
  if (length <= tokens) return null;
  if (length > EXTRAPOLATION_LIMIT * tokens) {
    throw new InputError(
      `${what} are more than ${EXTRAPOLATION_LIMIT}× the model's context of ${tokens} (${source}); ` +
        `the longest length this model accepts is ${EXTRAPOLATION_LIMIT * tokens}`,
    );
  }
  return `warning: ${what} exceed the model's context of ${tokens} (${source}): positions past ` +
    `it were not trained, so expect degraded results`;
}

/**
 * Bytes of a dense float32 KV cache holding `tokens` positions (keys and values of every layer
 * and kv head), what the CPU backend keeps for dense attention and at most for the others.
 */
export function kvCacheBytes(config: ModelConfig, tokens: number): number {
  return config.numLayers * 2 * config.numKvHeads * config.headDim * 4 * tokens;
}

/**
 * Refuses work whose KV cache cannot fit in memory.
 *
 * @param config the model's config
 * @param tokens positions held at once (all sequences of a batch together)
 * @param what names the work in the message, e.g. `lengths[0]: throughput at 500000 tokens × batch 8`
 * @param memory the machine's memory in bytes @default Deno.systemMemoryInfo().total
 * @throws InputError when the dense KV cache of `tokens` positions exceeds `memory`
 */
export function checkMemory(
  config: ModelConfig,
  tokens: number,
  what: string,
  memory: number = Deno.systemMemoryInfo().total,
): void {
  const need = kvCacheBytes(config, tokens);
  if (need > memory) {
    const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
    throw new InputError(
      `${what} need ${gb(need)} of KV cache (float32), more than this machine's ${
        gb(memory)
      } of memory; use a shorter length or a smaller batch`,
    );
  }
}
