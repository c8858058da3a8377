/**
 * The artifacts a run stores in its cache (experiments/cache.ts), each checked when read: a
 * cell's metrics, generated LongEval and RULER cases, a profile, a plan, DuoAttention's gates. A stored file that fails its check
 * is named in a warning and recomputed.
 *
 * @module
 */
import type { LongEvalCase } from "../data/longeval/longeval.ts";
import { RULER_TASKS, type RulerCase } from "../data/ruler/ruler.ts";
import type { DuoGates } from "../solver/duo.ts";
import type { Metric } from "../data/benchmarks.ts";
import type { ModelConfig } from "../runtime/model.ts";
import type { StoredInfluence } from "../solver/pipeline.ts";
import { type Plan, validatePlan } from "../solver/plan.ts";
import type { Cell } from "./schema.ts";

/** What the cache stores per cell. */
export interface CellArtifact {
  /** A value of NaN is missing (stored as null): the cell had nothing to measure. */
  metrics: Metric[];
  /** Where the cell ran (`cpu` or `webgpu`). */
  backend: string;
  /** The device, as the CSV names it. */
  device: string;
  /** ISO time the cell started. */
  started_at: string;
  /**
   * Each case's outcome (LongEval: 1 answered correctly, 0 not), for paired comparisons of two
   * runs (experiments/compare.ts). Absent in cells stored before it was recorded.
   */
  cases?: CaseOutcome[];
}

/** One benchmark case's outcome in a cell. */
export interface CaseOutcome {
  /** The case's id. */
  id: string;
  /** A hash of what was asked (prompt and expected answer): equal only for the same case. */
  hash: string;
  /** The case's score in [0, 1]. */
  score: number;
}

/** The metrics every artifact of a benchmark's cell has. */
const REQUIRED_METRICS: Record<Cell["benchmark"], string[]> = {
  longeval: ["accuracy", "prompt_tokens"],
  ruler: ["score", "prompt_tokens"],
  perplexity: ["perplexity", "nll"],
  throughput: ["prefill_tokens_per_s", "decode_tokens_per_s", "kv_bytes"],
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function shown(v: unknown): string {
  const t = v === undefined ? "nothing" : JSON.stringify(v);
  return t.length > 60 ? `${t.slice(0, 60)}…` : t;
}

/**
 * A stored cell artifact, checked: the metrics of the cell's benchmark with finite values (null
 * for missing) and counts, and the strings every row takes.
 * @throws Error naming the field that is wrong
 */
export function validCell(v: unknown, c: Cell): CellArtifact {
  if (!isRecord(v)) throw new Error(`expected an object, got ${shown(v)}`);
  if (!Array.isArray(v.metrics)) {
    throw new Error(`metrics: expected a list, got ${shown(v.metrics)}`);
  }
  const metrics = v.metrics.map((m: unknown, i): Metric => {
    if (!isRecord(m)) throw new Error(`metrics[${i}]: expected an object, got ${shown(m)}`);
    if (typeof m.metric !== "string" || m.metric === "") {
      throw new Error(`metrics[${i}].metric: expected a name, got ${shown(m.metric)}`);
    }
    if (m.value !== null && (typeof m.value !== "number" || !Number.isFinite(m.value))) {
      throw new Error(
        `metrics[${i}].value: expected a number (or null for missing), got ${shown(m.value)}`,
      );
    }
    if (typeof m.n !== "number" || !Number.isSafeInteger(m.n) || m.n < 0) {
      throw new Error(`metrics[${i}].n: expected a count, got ${shown(m.n)}`);
    }
    return { metric: m.metric, value: m.value ?? NaN, n: m.n };
  });
  for (const name of REQUIRED_METRICS[c.benchmark]) {
    if (!metrics.some((m) => m.metric === name)) {
      throw new Error(`metrics: no '${name}', which every ${c.benchmark} cell has`);
    }
  }
  for (const k of ["backend", "device", "started_at"] as const) {
    if (typeof v[k] !== "string") throw new Error(`${k}: expected a string, got ${shown(v[k])}`);
  }
  return {
    metrics,
    backend: v.backend as string,
    device: v.device as string,
    started_at: v.started_at as string,
    ...(v.cases === undefined ? {} : { cases: validOutcomes(v.cases) }),
  };
}

/** Stored per-case outcomes, checked. @throws Error naming the case and field that is wrong */
function validOutcomes(v: unknown): CaseOutcome[] {
  if (!Array.isArray(v)) throw new Error(`cases: expected a list, got ${shown(v)}`);
  return v.map((c: unknown, i): CaseOutcome => {
    if (!isRecord(c)) throw new Error(`cases[${i}]: expected an object, got ${shown(c)}`);
    for (const k of ["id", "hash"] as const) {
      if (typeof c[k] !== "string") {
        throw new Error(`cases[${i}].${k}: expected a string, got ${shown(c[k])}`);
      }
    }
    if (typeof c.score !== "number" || !(c.score >= 0 && c.score <= 1)) {
      throw new Error(`cases[${i}].score: expected a number in [0, 1], got ${shown(c.score)}`);
    }
    return { id: c.id as string, hash: c.hash as string, score: c.score };
  });
}

/**
 * Stored LongEval cases, checked for what the benchmark reads.
 * @throws Error naming the case and field that is wrong
 */
export function validCases(v: unknown): LongEvalCase[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new Error(`expected a non-empty list of cases, got ${shown(v)}`);
  }
  v.forEach((c: unknown, i) => {
    if (!isRecord(c)) throw new Error(`[${i}]: expected a case object, got ${shown(c)}`);
    if (typeof c.id !== "string") {
      throw new Error(`[${i}].id: expected a string, got ${shown(c.id)}`);
    }
    if (typeof c.prompt !== "string" || c.prompt === "") {
      throw new Error(`[${i}].prompt: expected a prompt, got ${shown(c.prompt)}`);
    }
    if (typeof c.expected !== "number" || !Number.isSafeInteger(c.expected)) {
      throw new Error(`[${i}].expected: expected an integer, got ${shown(c.expected)}`);
    }
    const d = c.decile;
    if (d !== null && !(typeof d === "number" && Number.isInteger(d) && d >= 0 && d <= 9)) {
      throw new Error(`[${i}].decile: expected null or 0–9, got ${shown(d)}`);
    }
  });
  return v as LongEvalCase[];
}

/**
 * A stored profile, checked against the model's shape.
 * @throws Error naming the field that is wrong
 */
export function validProfile(v: unknown, config: ModelConfig): StoredInfluence {
  if (!isRecord(v)) throw new Error(`expected an object, got ${shown(v)}`);
  for (const k of ["length", "block", "numBlocks", "samples"] as const) {
    if (typeof v[k] !== "number" || !Number.isSafeInteger(v[k]) || (v[k] as number) < 1) {
      throw new Error(`${k}: expected a positive integer, got ${shown(v[k])}`);
    }
  }
  const nb = v.numBlocks as number;
  if (nb !== Math.ceil((v.length as number) / (v.block as number))) {
    throw new Error(`numBlocks: expected ⌈length / block⌉, got ${nb}`);
  }
  const values = v.values;
  const ok = Array.isArray(values) && values.length === config.numLayers &&
    values.every((l) =>
      Array.isArray(l) && l.length === config.numKvHeads &&
      l.every((h) =>
        Array.isArray(h) && h.length === nb * nb &&
        h.every((x) => typeof x === "number" && Number.isFinite(x))
      )
    );
  if (!ok) {
    throw new Error(
      `values: expected ${config.numLayers} layers × ${config.numKvHeads} kv heads × ${nb}² finite numbers`,
    );
  }
  return v as unknown as StoredInfluence;
}

/**
 * A stored plan, checked as a plan file is and against the model's shape.
 * @throws Error naming the field that is wrong
 */
export function validPlan(v: unknown, config: ModelConfig): Plan {
  const plan = validatePlan(v, "plan");
  if (
    plan.alphas.length !== config.numLayers ||
    plan.alphas.some((l) => l.length !== config.numKvHeads)
  ) {
    throw new Error(
      `plan: expected ${config.numLayers} layers × ${config.numKvHeads} kv heads of rules`,
    );
  }
  return plan;
}

/**
 * Stored RULER cases, checked for what the benchmark reads.
 * @throws Error naming the case and field that is wrong
 */
export function validRulerCases(v: unknown): RulerCase[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new Error(`expected a non-empty list of cases, got ${shown(v)}`);
  }
  v.forEach((c: unknown, i) => {
    if (!isRecord(c)) throw new Error(`[${i}]: expected a case object, got ${shown(c)}`);
    if (!(RULER_TASKS as readonly unknown[]).includes(c.task)) {
      throw new Error(`[${i}].task: expected a RULER task, got ${shown(c.task)}`);
    }
    for (const k of ["id", "prompt"] as const) {
      if (typeof c[k] !== "string" || c[k] === "") {
        throw new Error(`[${i}].${k}: expected a string, got ${shown(c[k])}`);
      }
    }
    const e = c.expected;
    if (!Array.isArray(e) || e.length === 0 || !e.every((x) => typeof x === "string" && x)) {
      throw new Error(`[${i}].expected: expected a list of strings, got ${shown(e)}`);
    }
    if (typeof c.maxNew !== "number" || !Number.isSafeInteger(c.maxNew) || c.maxNew < 1) {
      throw new Error(`[${i}].maxNew: expected a positive integer, got ${shown(c.maxNew)}`);
    }
  });
  return v as RulerCase[];
}

/**
 * Stored DuoAttention gates, checked against the model's shape.
 * @throws Error naming the field that is wrong
 */
export function validDuoGates(v: unknown, config: ModelConfig): DuoGates {
  if (!isRecord(v)) throw new Error(`expected an object, got ${shown(v)}`);
  const g = v.gates;
  const ok = Array.isArray(g) && g.length === config.numLayers &&
    g.every((l) =>
      Array.isArray(l) && l.length === config.numKvHeads &&
      l.every((x) => typeof x === "number" && x >= 0 && x <= 1)
    );
  if (!ok) {
    throw new Error(
      `gates: expected ${config.numLayers} layers × ${config.numKvHeads} kv heads of numbers in [0, 1]`,
    );
  }
  if (!Array.isArray(v.history)) {
    throw new Error(`history: expected a list, got ${shown(v.history)}`);
  }
  return v as unknown as DuoGates;
}
