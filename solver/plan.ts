/**
 * Plan files (DESIGN.md §3.9): the per-head elastic rules a solve chose, as JSON.
 *
 * ```json
 * {
 *   "model": "moa-tiny",
 *   "sink": 64, "block": 64, "density": 0.5,
 *   "lengths": [2048, 4096, 8192], "servingLength": 16384,
 *   "alphas": [[0, 1024, …], …],      // [layer][kv head], tokens
 *   "betas": [[0.5, 0.125, …], …],    // [layer][kv head]
 *   "provenance": { "created_at": "…", "git_sha": "…", "objectives": […] }
 * }
 * ```
 *
 * `alphas`/`betas` have the layout of the reference's published plans (`moa_alpha_beta.json`:
 * an object whose `alphas` and `betas` are [layer][head] lists), so {@link importReferencePlan}
 * and {@link exportReferencePlan} move plans between the two tools. Only that simple
 * [layer][head] form is read; a file nested one level deeper (one [layer][head] table per
 * length) is rejected with a message saying so.
 *
 * @module
 */
import { writeFileAtomic } from "../runtime/atomic.ts";
import { InputError } from "../runtime/errors.ts";
import type { Rule } from "./rules.ts";

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
   * Free-form record of how the plan was made, e.g. `created_at` (ISO time), `git_sha`,
   * `objectives` (loss at each profiled length), `solver` settings.
   */
  provenance: Record<string, unknown>;
}

/** Everything in a plan except the rules themselves. */
export type PlanMeta = Omit<Plan, "alphas" | "betas" | "provenance"> & {
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

/** Reads a rectangular [layer][head] table of finite numbers in [lo, hi]. */
function table(
  v: unknown,
  field: string,
  where: string,
  lo: number,
  hi: number,
): number[][] {
  if (!Array.isArray(v) || v.length === 0) fail(where, field, "a non-empty [layer][head] list", v);
  const width = Array.isArray(v[0]) ? v[0].length : 0;
  return v.map((row: unknown, l) => {
    if (!Array.isArray(row) || row.length === 0) {
      fail(where, `${field}[${l}]`, "a non-empty list of heads", row);
    }
    if (row.length !== width) {
      fail(where, `${field}[${l}]`, `${width} heads like ${field}[0]`, `${row.length} heads`);
    }
    return row.map((x: unknown, h) => {
      if (Array.isArray(x)) {
        throw new InputError(
          `${where}: ${field}[${l}][${h}]: expected a number, got a list; plans nested per ` +
            `length ([length][layer][head]) are not supported, pass one length's ` +
            `[layer][head] table`,
        );
      }
      if (typeof x !== "number" || !Number.isFinite(x) || x < lo || x > hi) {
        const range = lo === -Infinity && hi === Infinity
          ? "a finite number"
          : `a number in [${lo}, ${hi}]`;
        fail(where, `${field}[${l}][${h}]`, range, x);
      }
      return x;
    });
  });
}

/** Checks alphas/betas and returns them as a matched pair of tables. */
function rulesOf(
  o: Record<string, unknown>,
  where: string,
): { alphas: number[][]; betas: number[][] } {
  const alphas = table(o.alphas, "alphas", where, -Infinity, Infinity);
  const betas = table(o.betas, "betas", where, 0, 1);
  if (betas.length !== alphas.length || betas[0]!.length !== alphas[0]!.length) {
    fail(
      where,
      "betas",
      `${alphas.length} layers × ${alphas[0]!.length} heads like alphas`,
      `${betas.length} × ${betas[0]!.length}`,
    );
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
  const { alphas, betas } = rulesOf(o, where);
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
 * ignored.
 *
 * @param json the reference plan: its JSON text or the parsed object
 * @param meta model, sink, block, density, lengths and serving length to record
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
  let value = json;
  if (typeof json === "string") {
    try {
      value = JSON.parse(json);
    } catch (e) {
      throw new InputError(`${where}: not valid JSON: ${(e as Error).message}`);
    }
  }
  if (!isRecord(value)) fail(where, "plan", "a JSON object with alphas and betas", value);
  const { alphas, betas } = rulesOf(value, where);
  return validatePlan({ ...meta, alphas, betas, provenance: meta.provenance ?? {} }, where);
}

/**
 * The reference's layout of a plan: `{alphas, betas}` as [layer][head] lists.
 *
 * @param plan the plan
 * @returns a fresh object ready for `JSON.stringify`
 *
 * @example
 * ```ts
 * import { exportReferencePlan } from "./plan.ts";
 * const plan = {
 *   model: "m", sink: 64, block: 64, density: 0.5, lengths: [256], servingLength: 512,
 *   alphas: [[0, 128]], betas: [[0.5, 0]], provenance: {},
 * };
 * console.log(JSON.stringify(exportReferencePlan(plan))); // {"alphas":[[0,128]],"betas":[[0.5,0]]}
 * ```
 */
export function exportReferencePlan(plan: Plan): { alphas: number[][]; betas: number[][] } {
  return { alphas: plan.alphas.map((row) => [...row]), betas: plan.betas.map((row) => [...row]) };
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
