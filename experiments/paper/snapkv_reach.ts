/**
 * Does SnapKV keep the answer? For LongEval cases, per layer and kv head, the share of cases whose
 * asked line keeps all its value tokens after SnapKV compresses the prompt, and the share that
 * keeps any token of the asked key (runtime/cpu/snapkv_cache.ts, DESIGN.md §4.4).
 *
 * ```sh
 * deno run -A experiments/paper/snapkv_reach.ts [LENGTH=1024] [DENSITY=0.5] [CASES=20] [KERNEL=7]
 * ```
 *
 * The cases are the experiment runner's at seed 0 (the first CASES of `baselines.yaml`'s cell).
 *
 * @module
 */
import { generateCases, type LongEvalCase } from "../../data/longeval/longeval.ts";
import { SnapKvCache } from "../../runtime/cpu/snapkv_cache.ts";
import { openSession, promptTokens, type Session } from "../../runtime/session.ts";
import { InputError, runCli } from "../../runtime/errors.ts";

/** Per layer and kv head, the share of cases that keep the asked value / any asked-key token. */
export interface Reach {
  value: number[][];
  key: number[][];
}

/**
 * Prefills each case into a SnapKV cache and checks which of the asked line's tokens it kept.
 * @param s a session (its CPU model and tokenizer)
 * @param cases LongEval cases with known keys
 * @param density SnapKV's density
 * @param kernel its pooling width
 */
export async function snapKvReach(
  s: Pick<Session, "cpu" | "tokenizer" | "bos">,
  cases: LongEvalCase[],
  density: number,
  kernel: number,
): Promise<Reach> {
  const { numLayers: L, numKvHeads: H } = s.cpu.model.config;
  const value = Array.from({ length: L }, () => new Array<number>(H).fill(0));
  const key = Array.from({ length: L }, () => new Array<number>(H).fill(0));
  const count = (text: string) => promptTokens(s, text).length;
  for (const c of cases) {
    const ids = promptTokens(s, c.prompt);
    const line = `line ${c.key}: REGISTER_CONTENT is <${c.expected}>`;
    const at = c.prompt.indexOf(line);
    if (c.key === null || at < 0) {
      throw new InputError(`${c.id}: the asked line is not in the prompt`);
    }
    // token ranges: [keyStart, keyEnd) the line's start and key; [valueStart, valueEnd) the digits
    const keyStart = count(c.prompt.slice(0, at));
    const keyEnd = count(c.prompt.slice(0, at + `line ${c.key}`.length));
    const valueStart = count(c.prompt.slice(0, at + line.length - `${c.expected}>`.length));
    const valueEnd = count(c.prompt.slice(0, at + line.length));
    const cache = new SnapKvCache(
      s.cpu.model.config,
      { density, kernel, promptLength: ids.length },
      ids.length,
    );
    await s.cpu.step([{ cache, tokens: ids }], "none");
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const kept = new Set(cache.kept(l, h));
        let all = true, any = false;
        for (let p = valueStart; p < valueEnd; p++) all &&= kept.has(p);
        for (let p = keyStart; p < keyEnd; p++) any ||= kept.has(p);
        value[l]![h]! += all ? 1 / cases.length : 0;
        key[l]![h]! += any ? 1 / cases.length : 0;
      }
    }
  }
  return { value, key };
}

async function main(args: string[]): Promise<number> {
  const [length = 1024, density = 0.5, n = 20, kernel = 7] = args.map(Number);
  if (![length, density, n, kernel].every(Number.isFinite)) {
    throw new InputError("usage: snapkv_reach.ts [LENGTH] [DENSITY] [CASES] [KERNEL] (numbers)");
  }
  const s = await openSession("data/models/moa-tiny", "cpu");
  const cases = generateCases({
    count: n,
    targetLength: length,
    seed: 0,
    countTokens: (t) => promptTokens(s, t).length,
  });
  const r = await snapKvReach(s, cases, density, kernel);
  console.log(`${length} tokens, density ${density}, kernel ${kernel}, ${n} cases:`);
  console.log("layer  value kept (per kv head)  key token kept (per kv head)");
  r.value.forEach((row, l) => {
    const f = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" ");
    console.log(`${l}      ${f(row).padEnd(26)}${f(r.key[l]!)}`);
  });
  return 0;
}

if (import.meta.main) await runCli(main);
