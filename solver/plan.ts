/**
 * Plan files (DESIGN.md §3.9): the per-head elastic rules a solve chose, as JSON.
 *
 * ```json
 * {
 *   "model": "moa-tiny",
 *   "sink": 64, "block": 64, "density": 0.5,
 *   "lengths": [2048, 4096, 8192], "servingLength": 16384,
 *   "spans": "per-query",             // or "reference"; absent means "per-query"
 *   "alphas": [[0, 1024, …], …],      // [layer][kv head], tokens
 *   "betas": [[0.5, 0.125, …], …],    // [layer][kv head]
 *   "provenance": { "created_at": "…", "git_sha": "…", "objectives": […] }
 * }
 * ```
 *
 * `spans` is the span semantics the plan runs with (`runtime/spans.ts`): this project's
 * `per-query` windows or the reference runtime's.
 *
 * `alphas`/`betas` have the layout of the reference's published plans (`moa_alpha_beta.json`:
 * an object whose `alphas` and `betas` are [layer][head] lists), so {@link importReferencePlan}
 * and {@link exportReferencePlan} move plans between the two tools. The reference keeps one rule
 * per query head, also for grouped-query models (it converts them to one kv head per query head
 * first); {@link toKvHeads} and {@link toQueryHeads} convert between that and this project's one
 * rule per kv head. Only that simple [layer][head] form is read; a file nested one level deeper
 * (one [layer][head] table per length) is rejected with a message saying so.
 *
 * @module
 */
import { writeFileAtomic } from "../runtime/atomic.ts";
import { InputError } from "../runtime/errors.ts";
import { type Rule, ruleSpan } from "./rules.ts";
import {
  checkSparsePlan,
  referenceCacheSize,
  SPAN_SEMANTICS,
  type SpanSemantics,
  type SparsePlan,
} from "../runtime/spans.ts";

/** A compression plan: one elastic rule per layer and KV head. */
export interface Plan {
  /** The model the plan was solved for (name or folder). */
  model: string;
  /** Tokens every head keeps at the start. */
  sink: number;
  /** Block size in tokens (density and profiling count whole blocks of this size). */
  block: number;
  /** The density budget the plan was solved for, in (0, 1]. */
  density: number;
  /** The profiled lengths. */
  lengths: number[];
  /** The longest length the plan serves. */
  servingLength: number;
  /** α per [layer][kv head], in tokens. */
  alphas: number[][];
  /** β per [layer][kv head], in [0, 1]. */
  betas: number[][];
  /**
   * The span semantics the plan runs with (`runtime/spans.ts`); absent means `per-query`.
   * `reference` needs a sink of whole blocks.
   */
  spans?: SpanSemantics;
  /**
   * Free-form record of how the plan was made, e.g. `created_at` (ISO time), `git_sha`,
   * `objectives` (loss at each profiled length), `solver` settings.
   */
  provenance: Record<string, unknown>;
}

/** Everything in a plan except the rules themselves. */
export type PlanMeta = Omit<Plan, "alphas" | "betas" | "provenance" | "spans"> & {
  spans?: SpanSemantics;
  provenance?: Record<string, unknown>;
};

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function fail(where: string, field: string, expected: string, got: unknown): never {
  throw new InputError(`${where}: ${field}: expected ${expected}, got ${describe(got)}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function intField(o: Record<string, unknown>, key: string, min: number, where: string): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    fail(where, key, `an integer ≥ ${min}`, v);
  }
  return v;
}

/**
 * Reads a [layer][head] table of numbers; its shape and bounds are checked with the rest of the
 * plan (`checkSparsePlan` in runtime/spans.ts).
 */
function table(v: unknown, field: string, where: string, what: string): number[][] {
  if (!Array.isArray(v) || v.length === 0) fail(where, field, "a non-empty [layer][head] list", v);
  return v.map((row: unknown, l) => {
    if (!Array.isArray(row) || row.length === 0) {
      fail(where, `${field}[${l}]`, "a non-empty list of heads", row);
    }
    return row.map((x: unknown, h) => {
      if (Array.isArray(x)) {
        throw new InputError(
          `${where}: ${field}[${l}][${h}]: expected a number, got a list; plans nested per ` +
            `length ([length][layer][head]) are not supported, pass one length's ` +
            `[layer][head] table`,
        );
      }
      if (typeof x !== "number") fail(where, `${field}[${l}][${h}]`, what, x);
      return x;
    });
  });
}

/**
 * Reads alphas/betas and checks them, with the plan's sink, block and span semantics, as every
 * plan is checked (`checkSparsePlan`): a matched pair of rectangular tables, α finite, β in
 * [0, 1].
 * @throws {InputError} naming the first bad field
 */
function rulesOf(
  o: Record<string, unknown>,
  where: string,
  grid: Omit<SparsePlan, "alphas" | "betas"> = { sink: 0 },
): { alphas: number[][]; betas: number[][] } {
  const alphas = table(o.alphas, "alphas", where, "a finite number");
  const betas = table(o.betas, "betas", where, "a number in [0, 1]");
  try {
    checkSparsePlan({ ...grid, alphas, betas }, where);
  } catch (e) {
    if (e instanceof RangeError) throw new InputError(e.message);
    throw e;
  }
  return { alphas, betas };
}

/**
 * Checks a parsed plan object field by field.
 *
 * @param value the parsed JSON
 * @param where the file name (or other origin) for messages
 * @returns the plan, with only its known fields
 * @throws {InputError} naming the first bad field, its value and what was expected
 *
 * @example
 * ```ts
 * import { validatePlan } from "./plan.ts";
 * try {
 *   validatePlan({ model: "m", sink: 64, block: 64, density: 2 }, "plan.json");
 * } catch (e) {
 *   console.log((e as Error).message); // plan.json: density: expected a number in (0, 1], got 2
 * }
 * ```
 */
export function validatePlan(value: unknown, where: string): Plan {
  if (!isRecord(value)) fail(where, "plan", "a JSON object", value);
  const o = value;
  if (typeof o.model !== "string" || o.model === "") {
    fail(where, "model", "a non-empty string", o.model);
  }
  const sink = intField(o, "sink", 0, where);
  const block = intField(o, "block", 1, where);
  const density = o.density;
  if (typeof density !== "number" || !(density > 0 && density <= 1)) {
    fail(where, "density", "a number in (0, 1]", density);
  }
  if (!Array.isArray(o.lengths) || o.lengths.length === 0) {
    fail(where, "lengths", "a non-empty list of positive integers", o.lengths);
  }
  const lengths = o.lengths.map((n: unknown, i) => {
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
      fail(where, `lengths[${i}]`, "a positive integer", n);
    }
    return n;
  });
  const servingLength = intField(o, "servingLength", 1, where);
  let spans: SpanSemantics | undefined;
  if (o.spans !== undefined) {
    if (!SPAN_SEMANTICS.includes(o.spans as SpanSemantics)) {
      fail(where, "spans", `one of ${SPAN_SEMANTICS.map((x) => `"${x}"`).join(", ")}`, o.spans);
    }
    spans = o.spans as SpanSemantics;
  }
  const { alphas, betas } = rulesOf(o, where, { sink, block, ...(spans ? { spans } : {}) });
  let provenance: Record<string, unknown> = {};
  if (o.provenance !== undefined) {
    if (!isRecord(o.provenance)) fail(where, "provenance", "a JSON object", o.provenance);
    provenance = o.provenance;
  }
  return {
    model: o.model,
    sink,
    block,
    density,
    lengths,
    servingLength,
    ...(spans ? { spans } : {}),
    alphas,
    betas,
    provenance,
  };
}

/** JSON with every innermost list of numbers on one line (a plan row reads as one line). */
function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]/g,
    (_, inner: string) => `[${inner.split(/,\s*/).join(", ")}]`,
  ) + "\n";
}

/**
 * Writes a plan file atomically (temporary file in the same folder, then rename).
 *
 * @param path the target file
 * @param plan the plan (checked first, so a bad plan is never written)
 *
 * @example
 * ```ts
 * import { readPlan, writePlan } from "./plan.ts";
 * const dir = await Deno.makeTempDir();
 * await writePlan(`${dir}/plan.json`, {
 *   model: "moa-tiny", sink: 64, block: 64, density: 0.5, lengths: [256], servingLength: 512,
 *   alphas: [[0, 128]], betas: [[0.5, 0]], provenance: {},
 * });
 * console.log((await readPlan(`${dir}/plan.json`)).alphas); // [[0, 128]]
 * ```
 */
export async function writePlan(path: string, plan: Plan): Promise<void> {
  const checked = validatePlan(plan, path);
  await writeFileAtomic(path, formatJson(checked));
}

/**
 * Reads and checks a plan file.
 *
 * @param path the plan file
 * @returns the plan
 * @throws {InputError} when the file is missing, not JSON, or a field is malformed (named)
 */
export async function readPlan(path: string): Promise<Plan> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InputError(`${path}: plan file not found`);
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  return validatePlan(value, path);
}

/**
 * Turns a solver assignment into a plan: head h = layer·headsPerLayer + kvHead takes
 * `rules[choice[h]]`.
 *
 * @param rules the candidate rules the choice indexes
 * @param choice the rule index of every head, layer-major
 * @param headsPerLayer KV heads per layer
 * @param meta everything else in the plan
 * @returns the plan
 *
 * @example
 * ```ts
 * import { planFromChoice } from "./plan.ts";
 * const rules = [{ alpha: 0, beta: 0.5 }, { alpha: 1024, beta: 0 }];
 * const meta = { model: "m", sink: 64, block: 64, density: 0.5, lengths: [2048], servingLength: 4096 };
 * console.log(planFromChoice(rules, [0, 1, 1, 0], 2, meta).alphas); // [[0, 1024], [1024, 0]]
 * ```
 */
export function planFromChoice(
  rules: readonly Rule[],
  choice: readonly number[],
  headsPerLayer: number,
  meta: PlanMeta,
): Plan {
  if (!(headsPerLayer > 0) || choice.length % headsPerLayer !== 0) {
    throw new RangeError(
      `planFromChoice: ${choice.length} heads do not split into layers of ${headsPerLayer}`,
    );
  }
  const layers = choice.length / headsPerLayer;
  const rule = (l: number, h: number) => {
    const r = rules[choice[l * headsPerLayer + h]!];
    if (!r) throw new RangeError(`planFromChoice: head ${l * headsPerLayer + h} has no rule`);
    return r;
  };
  const grid = (f: (r: Rule) => number) =>
    Array.from(
      { length: layers },
      (_, l) => Array.from({ length: headsPerLayer }, (_, h) => f(rule(l, h))),
    );
  return {
    ...meta,
    alphas: grid((r) => r.alpha),
    betas: grid((r) => r.beta),
    provenance: { ...(meta.provenance ?? {}) },
  };
}

/**
 * Reads a plan in the reference's layout (`{"alphas": [[…]], "betas": [[…]]}`, [layer][head]),
 * adding the fields that layout lacks from `meta`. Other keys in the reference object are
 * ignored. The heads are kept as they are; {@link importReferencePlanFor} also fits them to a
 * model (one rule per kv head).
 *
 * @param json the reference plan: its JSON text or the parsed object
 * @param meta model, sink, block, density, lengths, serving length and span semantics to record
 * @param where origin for messages @default "reference plan"
 * @returns the plan
 * @throws {InputError} when alphas/betas are missing, ragged, non-numeric or nested per length
 *
 * @example
 * ```ts
 * import { importReferencePlan } from "./plan.ts";
 * const meta = { model: "vicuna-7b", sink: 64, block: 64, density: 0.5, lengths: [2048, 4096, 8192], servingLength: 16384 };
 * const plan = importReferencePlan('{"alphas": [[0.0, -1024.0]], "betas": [[0.5, 0.75]]}', meta);
 * console.log(plan.alphas, plan.betas); // [[0, -1024]] [[0.5, 0.75]]
 * ```
 */
export function importReferencePlan(
  json: unknown,
  meta: PlanMeta,
  where = "reference plan",
): Plan {
  const { alphas, betas } = referenceTables(json, where);
  return validatePlan({ ...meta, alphas, betas, provenance: meta.provenance ?? {} }, where);
}

/** Parses a reference plan's text (or takes the object) and checks its alphas/betas. */
function referenceTables(json: unknown, where: string): { alphas: number[][]; betas: number[][] } {
  let value = json;
  if (typeof json === "string") {
    try {
      value = JSON.parse(json);
    } catch (e) {
      throw new InputError(`${where}: not valid JSON: ${(e as Error).message}`);
    }
  }
  if (!isRecord(value)) fail(where, "plan", "a JSON object with alphas and betas", value);
  return rulesOf(value, where);
}

/** The attention shape a plan is fitted to. */
export interface HeadShape {
  /** Layers. */
  numLayers: number;
  /** Query heads per layer. */
  numHeads: number;
  /** Key/value heads per layer (a divisor of numHeads). */
  numKvHeads: number;
}

/** A kv head whose query heads had different rules in a per-query-head plan. */
export interface GroupDisagreement {
  /** The layer. */
  layer: number;
  /** The kv head within the layer. */
  kvHead: number;
  /** The query heads of the group: kvHead·G … kvHead·G + G − 1. */
  queryHeads: number[];
  /** The distinct rules of the group with how many query heads had each, in head order. */
  rules: { rule: Rule; heads: number }[];
  /** The rule the kv head takes (the widest). */
  chosen: Rule;
  /** A length at which another member keeps more keys than the chosen rule, if any. */
  narrowerAt: { length: number; rule: Rule } | null;
  /** One line for the user. */
  message: string;
}

/**
 * The keys a rule keeps per head at length n under a span semantics: sink + S(n) (`per-query`),
 * or the reference runtime's cache size (`reference`).
 */
function keptKeys(rule: Rule, n: number, plan: PlanMeta): number {
  return plan.spans === "reference"
    ? referenceCacheSize(rule.alpha, rule.beta, n, plan.sink, plan.block)
    : Math.min(n, plan.sink + ruleSpan(rule, n));
}

const fmtRule = (r: Rule) => `(${r.alpha}, ${r.beta})`;

/**
 * Converts a plan with one rule per query head (the reference's layout) to one rule per kv head:
 * kv head g takes the widest rule of its query heads g·G … g·G + G − 1 (G = numHeads /
 * numKvHeads), the one keeping the most keys summed over the plan's lengths and serving length
 * (ties: the lowest query head's), so no query head of the group loses keys it had at those
 * lengths unless the rules cross; groups whose members differ are reported.
 *
 * @param plan the plan, `numHeads` entries per layer
 * @param numKvHeads kv heads per layer (a divisor of the plan's heads per layer)
 * @param where origin for messages @default "plan"
 * @returns the plan with `numKvHeads` entries per layer, and the groups that disagreed
 * @throws {InputError} when the heads do not split into numKvHeads groups
 *
 * @example
 * ```ts
 * import { toKvHeads } from "./plan.ts";
 * const plan = {
 *   model: "m", sink: 64, block: 64, density: 0.5, lengths: [2048, 4096], servingLength: 8192,
 *   alphas: [[0, 0, -1024, 0]], betas: [[0.5, 0.5, 0.875, 0.5]], provenance: {},
 * };
 * const { plan: kv, disagreements } = toKvHeads(plan, 2);
 * console.log(kv.alphas, kv.betas, disagreements.length); // [[0, -1024]] [[0.5, 0.875]] 1
 * ```
 */
export function toKvHeads(
  plan: Plan,
  numKvHeads: number,
  where = "plan",
): { plan: Plan; disagreements: GroupDisagreement[] } {
  const NH = plan.alphas[0]!.length;
  if (!Number.isInteger(numKvHeads) || numKvHeads < 1 || NH % numKvHeads !== 0) {
    throw new InputError(
      `${where}: alphas[0]: ${NH} query heads do not split into ${numKvHeads} kv heads`,
    );
  }
  const G = NH / numKvHeads;
  const lengths = [...new Set([...plan.lengths, plan.servingLength])].sort((a, b) => a - b);
  const disagreements: GroupDisagreement[] = [];
  const alphas: number[][] = [], betas: number[][] = [];
  plan.alphas.forEach((row, l) => {
    alphas.push([]);
    betas.push([]);
    for (let g = 0; g < numKvHeads; g++) {
      const heads = Array.from({ length: G }, (_, i) => g * G + i);
      const members = heads.map((h) => ({ alpha: row[h]!, beta: plan.betas[l]![h]! }));
      const total = (r: Rule) => lengths.reduce((a, n) => a + keptKeys(r, n, plan), 0);
      let chosen = members[0]!;
      for (const r of members) if (total(r) > total(chosen)) chosen = r;
      alphas[l]!.push(chosen.alpha);
      betas[l]!.push(chosen.beta);
      const distinct: { rule: Rule; heads: number }[] = [];
      for (const r of members) {
        const d = distinct.find((x) => x.rule.alpha === r.alpha && x.rule.beta === r.beta);
        if (d) d.heads++;
        else distinct.push({ rule: r, heads: 1 });
      }
      if (distinct.length === 1) continue;
      let narrowerAt: GroupDisagreement["narrowerAt"] = null;
      for (const n of lengths) {
        const wider = members.find((r) => keptKeys(r, n, plan) > keptKeys(chosen, n, plan));
        if (wider) {
          narrowerAt = { length: n, rule: wider };
          break;
        }
      }
      const message = `layer ${l} kv head ${g} (query heads ${heads[0]}–${heads.at(-1)}): ` +
        `rules differ (${
          distinct.map((d) => `${fmtRule(d.rule)} ×${d.heads}`).join(", ")
        }); kept the widest, ${fmtRule(chosen)}` +
        (narrowerAt
          ? `, though ${fmtRule(narrowerAt.rule)} keeps more at ${narrowerAt.length} tokens`
          : "");
      disagreements.push({
        layer: l,
        kvHead: g,
        queryHeads: heads,
        rules: distinct,
        chosen,
        narrowerAt,
        message,
      });
    }
  });
  return { plan: { ...plan, alphas, betas }, disagreements };
}

/**
 * Converts a plan with one rule per kv head to one rule per query head, each kv head's rule
 * repeated for its G = numHeads / kvHeads query heads (the layout the reference reads).
 *
 * @param plan the plan, one rule per kv head
 * @param numHeads query heads per layer (a multiple of the plan's heads per layer)
 * @returns the plan with `numHeads` entries per layer
 * @throws {InputError} when numHeads is not a multiple of the plan's heads per layer
 *
 * @example
 * ```ts
 * import { toQueryHeads } from "./plan.ts";
 * const plan = {
 *   model: "m", sink: 64, block: 64, density: 0.5, lengths: [2048], servingLength: 4096,
 *   alphas: [[0, -1024]], betas: [[0.5, 0.875]], provenance: {},
 * };
 * console.log(toQueryHeads(plan, 4).alphas); // [[0, 0, -1024, -1024]]
 * ```
 */
export function toQueryHeads(plan: Plan, numHeads: number): Plan {
  const NKV = plan.alphas[0]!.length;
  if (!Number.isInteger(numHeads) || numHeads < NKV || numHeads % NKV !== 0) {
    throw new InputError(
      `plan: ${NKV} kv heads per layer do not spread over ${numHeads} query heads ` +
        `(expected a multiple of ${NKV})`,
    );
  }
  const G = numHeads / NKV;
  const spread = (rows: number[][]) =>
    rows.map((row) => Array.from({ length: numHeads }, (_, h) => row[Math.floor(h / G)]!));
  return { ...plan, alphas: spread(plan.alphas), betas: spread(plan.betas) };
}

/**
 * Reads a reference plan for a model: checks its layer count, and when it has one rule per query
 * head of a grouped-query model, converts it to one per kv head ({@link toKvHeads}).
 *
 * @param json the reference plan: its JSON text or the parsed object
 * @param meta what the reference layout lacks (model, sink, block, density, lengths, spans)
 * @param shape the model's layers, query heads and kv heads
 * @param where the file, for messages
 * @returns the plan (one rule per kv head) and the groups whose query heads disagreed
 * @throws {InputError} naming the field when the layers or heads do not fit the model
 */
export function importReferencePlanFor(
  json: unknown,
  meta: PlanMeta,
  shape: HeadShape,
  where = "reference plan",
): { plan: Plan; disagreements: GroupDisagreement[] } {
  const { alphas, betas } = referenceTables(json, where);
  if (alphas.length !== shape.numLayers) {
    fail(
      where,
      "alphas",
      `${shape.numLayers} layers (the model's num_hidden_layers)`,
      `${alphas.length} layers`,
    );
  }
  const heads = alphas[0]!.length;
  if (heads !== shape.numHeads && heads !== shape.numKvHeads) {
    const either = shape.numHeads === shape.numKvHeads
      ? `${shape.numHeads} heads`
      : `${shape.numHeads} heads (one per query head) or ${shape.numKvHeads} (one per kv head)`;
    fail(where, "alphas[0]", either, `${heads} heads`);
  }
  const plan = validatePlan({ ...meta, alphas, betas, provenance: meta.provenance ?? {} }, where);
  if (heads === shape.numKvHeads) return { plan, disagreements: [] };
  return toKvHeads(plan, shape.numKvHeads, where);
}

/**
 * The reference's layout of a plan: `{alphas, betas}` as [layer][head] lists, one rule per
 * query head when `numHeads` is given (each kv head's rule repeated for its group).
 *
 * @param plan the plan
 * @param numHeads query heads per layer; omit to keep the plan's heads as they are
 * @returns a fresh object ready for `JSON.stringify` or {@link formatReferencePlan}
 *
 * @example
 * ```ts
 * import { exportReferencePlan } from "./plan.ts";
 * const plan = {
 *   model: "m", sink: 64, block: 64, density: 0.5, lengths: [256], servingLength: 512,
 *   alphas: [[0, 128]], betas: [[0.5, 0]], provenance: {},
 * };
 * console.log(JSON.stringify(exportReferencePlan(plan))); // {"alphas":[[0,128]],"betas":[[0.5,0]]}
 * console.log(JSON.stringify(exportReferencePlan(plan, 4).alphas)); // [[0,0,128,128]]
 * ```
 */
export function exportReferencePlan(
  plan: Plan,
  numHeads?: number,
): { alphas: number[][]; betas: number[][] } {
  const p = numHeads === undefined ? plan : toQueryHeads(plan, numHeads);
  return { alphas: p.alphas.map((row) => [...row]), betas: p.betas.map((row) => [...row]) };
}

/** A number as Python's `json.dumps` writes a float: integral values with a trailing ".0". */
function pythonFloat(x: number): string {
  return Number.isInteger(x) && Math.abs(x) < 1e16 ? `${x}.0` : JSON.stringify(x);
}

/**
 * The text of a reference plan as the reference's published files are written (Python's
 * `json.dump` of floats: one line, `", "` and `": "` separators, integral values as `0.0`), so a
 * published file read and written back is unchanged.
 *
 * @param ref alphas and betas, [layer][head]
 * @returns the JSON text, without a trailing newline (as the published files)
 *
 * @example
 * ```ts
 * import { formatReferencePlan } from "./plan.ts";
 * console.log(formatReferencePlan({ alphas: [[0, -1024]], betas: [[0.5, 1]] }));
 * // {"alphas": [[0.0, -1024.0]], "betas": [[0.5, 1.0]]}
 * ```
 */
export function formatReferencePlan(ref: { alphas: number[][]; betas: number[][] }): string {
  const rows = (t: number[][]) =>
    `[${t.map((r) => `[${r.map(pythonFloat).join(", ")}]`).join(", ")}]`;
  return `{"alphas": ${rows(ref.alphas)}, "betas": ${rows(ref.betas)}}`;
}

/**
 * A provenance record: the time, the git commit of the working tree (null outside a git
 * checkout or without git) and any extra fields.
 *
 * @param extra fields to add (objective values, solver settings, …)
 * @returns `{created_at, git_sha, ...extra}`
 */
export async function planProvenance(
  extra: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  let sha: string | null = null;
  try {
    const out = await new Deno.Command("git", { args: ["rev-parse", "HEAD"], stderr: "null" })
      .output();
    if (out.success) sha = new TextDecoder().decode(out.stdout).trim() || null;
  } catch {
    sha = null; // no git on this machine
  }
  return { created_at: new Date().toISOString(), git_sha: sha, ...extra };
}
