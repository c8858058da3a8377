/**
 * DuoAttention's head patterns (Xiao et al., "DuoAttention: Efficient Long-Context LLM Inference
 * with Retrieval and Streaming Heads", 2024; DESIGN.md §4.6): one gate in [0, 1] per layer and kv
 * head says how much the head needs the whole context. Binarised, the heads with the largest
 * gates are retrieval heads (every key and value) and the others streaming heads (the first
 * `sink` tokens and the `recent` last ones). Both kinds are MoA rules, so the MoA cache runs them
 * (CPU and GPU alike): a retrieval head is α = 0, β = 1, a streaming head α = recent, β = 0.
 *
 * At a density d and a length n the project spends the same KV budget as every other method,
 * d · heads · n entries ({@link duoBudget}): as many retrieval heads as the budget allows while
 * streaming heads keep at least sink + `minRecent` tokens, then the streaming heads' recent
 * window takes what is left.
 *
 * Published patterns (`attn_patterns/<model>/<run>/full_attention_heads.tsv` in the DuoAttention
 * repository: one row per layer, one tab-separated column per kv head, values written as
 * `%.18e`, with `sink_size` and `recent_size` in a `config.json` beside it) are read by
 * {@link loadDuoPattern} and written by {@link formatDuoGates}.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { InputError } from "./errors.ts";
import type { ModelConfig } from "./model.ts";
import type { SparsePlan } from "./spans.ts";

/** Gates per (layer, kv head), with the streaming settings a published pattern came with. */
export interface DuoPattern {
  /** [layer][kv head], each in [0, 1]. */
  gates: number[][];
  /** `sink_size` of the pattern's config.json, when there is one. */
  sink: number | null;
  /** `recent_size` of the pattern's config.json, when there is one. */
  recent: number | null;
}

/** How a density is spent by DuoAttention at one length. */
export interface DuoBudget {
  /** Retrieval heads (full KV), over all layers. */
  retrieval: number;
  /** Recent tokens every streaming head keeps besides the sink. */
  recent: number;
}

/**
 * The retrieval-head count and the streaming window that spend d · heads · n KV entries: the
 * most retrieval heads k with (heads − k) streaming heads of at least sink + minRecent tokens,
 * then recent = round((d · heads · n − k · n) / (heads − k)) − sink (at least 0; below
 * sink / n the density cannot be met and the streaming heads keep the sink only).
 *
 * @param heads kv heads over all layers
 * @param density the share of the dense KV kept, in (0, 1]
 * @param length the sequence length n it is kept at
 * @param sink leading tokens a streaming head keeps
 * @param minRecent fewest recent tokens a streaming head keeps while retrieval heads remain
 * @returns the number of retrieval heads and the streaming heads' recent window
 * @example
 * ```ts
 * import { duoBudget } from "./duo.ts";
 * // 8 kv heads at 25% of 1,024 tokens: one retrieval head, seven of 32 + 114 tokens
 * console.log(duoBudget(8, 0.25, 1024, 32, 64)); // { retrieval: 1, recent: 114 }
 * ```
 */
export function duoBudget(
  heads: number,
  density: number,
  length: number,
  sink: number,
  minRecent: number,
): DuoBudget {
  if (!(density > 0 && density <= 1)) {
    throw new RangeError(`duoBudget: density is ${density}; expected a number in (0, 1]`);
  }
  const total = density * heads * length, streaming = sink + minRecent;
  const k = streaming >= length
    ? 0
    : Math.max(0, Math.min(heads, Math.floor((total - heads * streaming) / (length - streaming))));
  if (k === heads) return { retrieval: k, recent: 0 };
  return {
    retrieval: k,
    recent: Math.max(0, Math.round((total - k * length) / (heads - k)) - sink),
  };
}

/**
 * The k heads with the largest gates (ties: the earlier layer, then the earlier head), as
 * DuoAttention binarises at a quantile.
 *
 * @param gates [layer][kv head]
 * @param k retrieval heads wanted
 * @returns [layer][kv head], true for a retrieval head
 */
export function retrievalHeads(gates: readonly number[][], k: number): boolean[][] {
  const order = gates.flatMap((row, l) => row.map((x, g) => ({ x, l, g })))
    .sort((a, b) => b.x - a.x || a.l - b.l || a.g - b.g);
  const out = gates.map((row) => row.map(() => false));
  for (const { l, g } of order.slice(0, k)) out[l]![g] = true;
  return out;
}

/**
 * DuoAttention at a density and length as MoA rules (per-query spans): the retrieval heads of
 * {@link retrievalHeads} keep everything (α = 0, β = 1), the others the sink and the recent
 * window of {@link duoBudget} (α = recent, β = 0).
 *
 * @param gates [layer][kv head] gates in [0, 1]
 * @param density the share of the dense KV kept
 * @param length the length the density is met at (the prompt's)
 * @param sink leading tokens a streaming head keeps
 * @param minRecent fewest recent tokens of a streaming head @default 2 · sink
 * @returns the rules, one per (layer, kv head)
 * @example
 * ```ts
 * import { duoRules } from "./duo.ts";
 * const plan = duoRules([[0.9, 0.1], [0.2, 0.4]], 0.5, 1000, 10);
 * console.log(plan.betas); // [[1, 0], [0, 0]]: one retrieval head
 * ```
 */
export function duoRules(
  gates: readonly number[][],
  density: number,
  length: number,
  sink: number,
  minRecent = 2 * sink,
): SparsePlan {
  const heads = gates.reduce((a, row) => a + row.length, 0);
  const { retrieval, recent } = duoBudget(heads, density, length, sink, minRecent);
  const full = retrievalHeads(gates, retrieval);
  return {
    sink,
    alphas: full.map((row) => row.map((f) => (f ? 0 : recent))),
    betas: full.map((row) => row.map((f) => (f ? 1 : 0))),
    spans: "per-query",
  };
}

/**
 * Parses `full_attention_heads.tsv`: one row per layer, tab- or space-separated numbers, one per
 * kv head; values are clipped to [0, 1] as DuoAttention's loader does.
 *
 * @param text the file's contents
 * @param file named in errors
 * @param config the model the pattern must fit (layers × kv heads), when given
 * @returns [layer][kv head] gates
 * @throws {InputError} `file:line:column: …` for a value that is not a number, rows of different
 *   lengths, or a shape that does not fit the model
 */
export function parseDuoGates(text: string, file: string, config?: ModelConfig): number[][] {
  const rows = text.split("\n").map((l) => l.replace(/\r$/, "")).map((line, i) => ({ line, i }))
    .filter(({ line }) => line.trim() !== "");
  if (rows.length === 0) throw new InputError(`${file}: no rows; expected one row per layer`);
  const gates = rows.map(({ line, i }) =>
    [...line.matchAll(/\S+/g)].map((m) => {
      const x = Number(m[0]);
      if (!Number.isFinite(x)) {
        throw new InputError(`${file}:${i + 1}:${m.index! + 1}: expected a number, got '${m[0]}'`);
      }
      return Math.min(1, Math.max(0, x));
    })
  );
  rows.forEach(({ i }, r) => {
    if (gates[r]!.length !== gates[0]!.length) {
      throw new InputError(
        `${file}:${i + 1}: expected ${gates[0]!.length} values (as row 1), got ${gates[r]!.length}`,
      );
    }
  });
  if (config) {
    const [L, NKV] = [config.numLayers, config.numKvHeads];
    if (gates.length !== L || gates[0]!.length !== NKV) {
      throw new InputError(
        `${file}: expected ${L} rows (one per layer) of ${NKV} values (one per kv head) for this ` +
          `model, got ${gates.length} rows of ${gates[0]!.length}`,
      );
    }
  }
  return gates;
}

/**
 * Gates in the published layout: rows of `%.18e` values joined by tabs, a newline after each.
 *
 * @param gates [layer][kv head]
 * @returns the text of a `full_attention_heads.tsv`
 * @example
 * ```ts
 * import { formatDuoGates } from "./duo.ts";
 * console.log(formatDuoGates([[1, 0.5]])); // "1.000000000000000000e+00\t5.000000000000000000e-01\n"
 * ```
 */
export function formatDuoGates(gates: readonly number[][]): string {
  const num = (x: number) => x.toExponential(18).replace(/e([+-])(\d)$/, "e$10$2");
  return gates.map((row) => row.map(num).join("\t") + "\n").join("");
}

/**
 * Reads a published pattern: a `full_attention_heads.tsv` file, or a folder holding one; the
 * `config.json` beside it, when present, gives `sink_size` and `recent_size`.
 *
 * @param path the file or folder
 * @param config the model it must fit
 * @returns the gates and the published streaming settings
 * @throws {InputError} naming the file: missing, unreadable, malformed, or not fitting the model
 */
export async function loadDuoPattern(path: string, config?: ModelConfig): Promise<DuoPattern> {
  let file = path;
  try {
    if ((await Deno.stat(path)).isDirectory) file = join(path, "full_attention_heads.tsv");
  } catch { /* reported below */ }
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new InputError(`${file}: cannot read the DuoAttention pattern (${(e as Error).message})`);
  }
  const gates = parseDuoGates(text, file, config);
  const cfgFile = join(dirname(file), "config.json");
  let sink: number | null = null, recent: number | null = null;
  try {
    const cfg = JSON.parse(await Deno.readTextFile(cfgFile));
    const int = (k: string) => {
      const v = cfg[k];
      if (v === undefined || v === null) return null;
      if (!Number.isInteger(v) || v < 0) {
        throw new InputError(
          `${cfgFile}: ${k}: expected a non-negative integer, got ${JSON.stringify(v)}`,
        );
      }
      return v as number;
    };
    [sink, recent] = [int("sink_size"), int("recent_size")];
  } catch (e) {
    if (e instanceof InputError) throw e;
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new InputError(`${cfgFile}: cannot read (${(e as Error).message})`);
    }
  }
  return { gates, sink, recent };
}
