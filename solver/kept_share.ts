/**
 * How much of a prompt's causal attention a rule keeps in prefill under each span semantics
 * (`runtime/spans.ts`), counted exactly row by row. `deno run -A solver/kept_share.ts` prints the
 * share for a synthetic reference-like plan (every head of a 32 × 32 model drawn from the
 * reference's 48 candidate rules) at a 4,096-token prompt, as issue 12 measured it on the
 * reference's published Vicuna-7B plan.
 *
 * @module
 */
import { referenceWindow, referenceWindowStart, type SpanSemantics } from "../runtime/spans.ts";
import { Rng } from "../runtime/rng.ts";
import { candidateRules, type Rule, ruleDensity, ruleSpan } from "./rules.ts";

/** Where a prefill runs. */
export interface PrefillShape {
  /** Prompt tokens, all prefilled in one step. */
  prompt: number;
  /** Most new tokens: the reference sizes its cache for prompt + newTokens. */
  newTokens: number;
  /** Leading tokens kept. */
  sink: number;
  /** Block size (the reference semantics). */
  block: number;
}

/**
 * Causal (query, key) entries of a prompt's prefill that a rule keeps.
 *
 * @param rule the rule
 * @param s prompt, new tokens, sink and block
 * @param spans the span semantics
 * @returns kept entries (of prompt·(prompt + 1)/2)
 *
 * @example
 * ```ts
 * import { keptEntries } from "./kept_share.ts";
 * const s = { prompt: 4096, newTokens: 1024, sink: 64, block: 64 };
 * const all = 4096 * 4097 / 2;
 * console.log(keptEntries({ alpha: -1024, beta: 1 }, s, "reference") / all); // 1
 * ```
 */
export function keptEntries(rule: Rule, s: PrefillShape, spans: SpanSemantics): number {
  const W = spans === "reference"
    ? referenceWindow(rule.alpha, rule.beta, s.prompt + s.newTokens, s.sink, s.block)
    : 0;
  let kept = 0;
  for (let i = 0; i < s.prompt; i++) {
    // window keys: j ≥ start (and ≥ sink), j ≤ i
    const start = spans === "reference"
      ? referenceWindowStart(i, W, s.sink, s.block, false)
      : Math.max(s.sink, i - Math.ceil(ruleSpan(rule, i + 1)) + 1);
    kept += Math.min(i + 1, s.sink) + Math.max(0, i + 1 - start);
  }
  return kept;
}

/**
 * A synthetic reference-like plan: each of layers × heads draws one of the reference's candidate
 * rules (profiled at 2k/4k/8k, serving 16k; sorted by span at 16k) uniformly, from all 48 or
 * from the `narrowest` ones.
 *
 * @param layers layers
 * @param heads heads per layer
 * @param seed random seed
 * @param narrowest draw from this many of the narrowest rules @default 48
 * @returns the rules, layer-major
 */
export function syntheticReferencePlan(
  layers: number,
  heads: number,
  seed: number,
  narrowest = 48,
): Rule[] {
  const rules = candidateRules([2048, 4096, 8192], 16384).slice(0, narrowest);
  const rng = new Rng(seed);
  return Array.from({ length: layers * heads }, () => rules[rng.int(0, rules.length - 1)]!);
}

/**
 * A synthetic plan at a density budget, as a solved reference plan would be: drawn uniformly from
 * the 48 candidate rules, then, while the mean block density (sink and block 64) exceeds the
 * budget at one of 2,048, 4,096, 8,192 and 16,384 tokens (the reference constrains every profiled
 * length and the serving length), a random head is redrawn from the rules at most half as dense
 * there.
 *
 * @param layers layers
 * @param heads heads per layer
 * @param seed random seed
 * @param density the budget
 * @returns the rules, layer-major
 */
export function syntheticPlanAtDensity(
  layers: number,
  heads: number,
  seed: number,
  density: number,
): Rule[] {
  const rules = candidateRules([2048, 4096, 8192], 16384);
  const lengths = [2048, 4096, 8192, 16384];
  const d = (r: Rule, n: number) => ruleDensity(r, n, 64, 64);
  const rng = new Rng(seed);
  const plan = Array.from({ length: layers * heads }, () => rules[rng.int(0, rules.length - 1)]!);
  for (;;) {
    const over = lengths.find((n) => plan.reduce((a, r) => a + d(r, n), 0) > density * plan.length);
    if (over === undefined) return plan;
    const h = rng.int(0, plan.length - 1);
    const narrower = rules.filter((r) => d(r, over) <= d(plan[h]!, over) / 2);
    if (narrower.length > 0) plan[h] = narrower[rng.int(0, narrower.length - 1)]!;
  }
}

if (import.meta.main) {
  const s: PrefillShape = { prompt: 4096, newTokens: 1024, sink: 64, block: 64 };
  const all = (s.prompt * (s.prompt + 1)) / 2;
  const share = (plan: Rule[], spans: SpanSemantics) =>
    plan.reduce((a, r) => a + keptEntries(r, s, spans), 0) / (plan.length * all);
  console.log(
    `prompt ${s.prompt} tokens, ${s.newTokens} new (the reference's default), sink ${s.sink}, ` +
      `block ${s.block}; synthetic plans of 32 × 32 heads (seed 0)`,
  );
  console.log(`| plan | per-query | reference |`);
  console.log(`| ---- | --------- | --------- |`);
  const plans: [string, Rule[]][] = [
    ["uniform over the 48 candidate rules", syntheticReferencePlan(32, 32, 0)],
    ["at most 50% density at 2k–16k tokens", syntheticPlanAtDensity(32, 32, 0, 0.5)],
    ["at most 25% density at 2k–16k tokens", syntheticPlanAtDensity(32, 32, 0, 0.25)],
  ];
  for (const [name, plan] of plans) {
    const [a, b] = (["per-query", "reference"] as const).map((x) => share(plan, x));
    console.log(`| ${name} | ${(100 * a!).toFixed(1)}% | ${(100 * b!).toFixed(1)}% |`);
  }
  console.log(`| rule | per-query | reference |`);
  console.log(`| ---- | --------- | --------- |`);
  for (const r of candidateRules([2048, 4096, 8192], 16384)) {
    const [a, b] = (["per-query", "reference"] as const).map((x) => keptEntries(r, s, x) / all);
    console.log(`| (${r.alpha}, ${r.beta}) | ${a!.toFixed(3)} | ${b!.toFixed(3)} |`);
  }
}
