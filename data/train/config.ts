/**
 * The moa-tiny training recipe as data: model shape, optimizer, and a curriculum of phases
 * (sequence length, batch, LongEval lines, data mix). Read from JSON and validated with errors
 * that name the file and field.
 *
 * @module
 */
import { InputError } from "../../runtime/errors.ts";
import type { AnswerStyle, KeyStyle } from "./mix.ts";
import { EVAL_KEY_SOURCES, type EvalKeySource } from "../longeval/keys.ts";

/** One curriculum phase. */
export interface Phase {
  /** Optimizer steps in this phase. */
  steps: number;
  /** Tokens per sequence. */
  T: number;
  /** Sequences per step. */
  B: number;
  /** LongEval record lines [min, max] (capped to fit T). */
  lines: [number, number];
  /** Relative weights of the example kinds. */
  mix: {
    brown: number;
    longeval: number;
    multiQuery: number;
    copy: number;
    repeat: number;
    recall: number;
  };
  /** `repeat` examples draw their tokens from the first this many ordinary ids (default: all) */
  repeatVocab?: number;
  /** how LongEval questions are answered: ` <VALUE>` (`"value"`, default) or the echoed line */
  answer?: AnswerStyle;
  /** loss weight of LongEval answer values in this phase (default `loss.answerWeight`) */
  valueWeight?: number;
  /**
   * Scales the recipe's cosine learning rate during this phase, ramping up from 0 over the
   * phase's first `warmup` steps (default 0: no ramp) to `lrScale` (default 1). A re-warm-up
   * lets Adam's moments adapt to a new mix before full steps are taken.
   */
  lrScale?: number;
  warmup?: number;
  /**
   * where LongEval and `recall` keys come from: `"train-words"` (default; recipes up to v5) or
   * `"varied"` (`data/longeval/keys.ts`: Brown word types, made-up words, letter-and-digit
   * strings, near misses)
   */
  keys?: KeyStyle;
  /**
   * spread position ids over `[0, spread)` (PoSE-style skips between chunks of an example, so
   * a model trained on short examples meets the distances of long ones); default: positions
   * `0..T-1` only
   */
  spread?: number;
  /** share of examples whose positions are spread (default 0.5 when `spread` is set) */
  spreadShare?: number;
}

/** A whole training recipe. */
export interface TrainConfig {
  seed: number;
  model: {
    hidden: number;
    layers: number;
    heads: number;
    kvHeads: number;
    intermediate: number;
    maxPositions: number;
    ropeTheta: number;
    /** one matrix for the input embedding and the output head (`tie_word_embeddings`) */
    tieEmbeddings?: boolean;
  };
  tokenizer: {
    vocabSize: number;
    /** keys in the tokenizer's LongEval sample (`data/tokenizer/bpe.ts`); default "train-words" */
    keys?: "train-words" | "none";
  };
  optimizer: {
    lr: number;
    minLrRatio: number;
    warmup: number;
    weightDecay: number;
    beta1: number;
    beta2: number;
    eps: number;
    clip: number;
    /**
     * Steps at which the cosine schedule starts again (warm-up, then decay to the end of its
     * cycle): a recipe extended after it finished restarts at its old end, so the steps already
     * run keep the schedule they were trained with. Default: one cycle over all the phases.
     */
    restarts?: number[];
    /**
     * Warm-up steps of each cycle that starts at `restarts` (same length; default `warmup`
     * for every one): a short extension can then warm up in a few steps and still decay.
     */
    restartWarmups?: number[];
  };
  /** Loss weights of context and answer tokens in task examples. */
  loss: { contextWeight: number; answerWeight: number };
  phases: Phase[];
  checkpointEvery: number;
  evalEvery: number;
  /**
   * Held-out LongEval evaluation during training: at prompt `lengths` (tokens) with held-out
   * words of the training list, or, when `lines` is given, at those record-line counts with
   * each of `keys` (evaluation key sources disjoint from training's, `data/longeval/keys.ts`).
   */
  eval: { lengths: number[]; cases: number; lines?: number[]; keys?: EvalKeySource[] };
}

const num = (
  file: string,
  path: string,
  v: unknown,
  check: (n: number) => boolean,
  what: string,
): number => {
  if (typeof v !== "number" || !check(v)) {
    throw new InputError(`${file}: ${path}: expected ${what}, got ${JSON.stringify(v)}`);
  }
  return v;
};
const posInt = (file: string, path: string, v: unknown) =>
  num(file, path, v, (n) => Number.isInteger(n) && n > 0, "a positive integer");
const nonNeg = (file: string, path: string, v: unknown) =>
  num(file, path, v, (n) => Number.isFinite(n) && n >= 0, "a non-negative number");

function obj(
  file: string,
  path: string,
  v: unknown,
  keys: string[],
  optional: string[] = [],
): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new InputError(`${file}: ${path}: expected an object, got ${JSON.stringify(v)}`);
  }
  for (const k of Object.keys(v)) {
    if (!keys.includes(k) && !optional.includes(k)) {
      throw new InputError(
        `${file}: ${path ? `${path}.` : ""}${k}: unknown field (known: ${
          [...keys, ...optional].join(", ")
        })`,
      );
    }
  }
  for (const k of keys) {
    if (!(k in v)) throw new InputError(`${file}: ${path ? `${path}.` : ""}${k}: missing`);
  }
  return v as Record<string, unknown>;
}

/**
 * Validates a parsed recipe.
 * @param json the parsed JSON
 * @param file named in error messages
 * @throws InputError naming the field and what was expected
 */
export function parseTrainConfig(json: unknown, file: string): TrainConfig {
  const o = obj(file, "", json, [
    "seed",
    "model",
    "tokenizer",
    "optimizer",
    "loss",
    "phases",
    "checkpointEvery",
    "evalEvery",
    "eval",
  ]);
  const model = parseModel(file, o.model);
  const tokenizer = parseTokenizer(file, o.tokenizer);
  const op = obj(file, "optimizer", o.optimizer, [
    "lr",
    "minLrRatio",
    "warmup",
    "weightDecay",
    "beta1",
    "beta2",
    "eps",
    "clip",
  ], ["restarts", "restartWarmups"]);
  const l = obj(file, "loss", o.loss, ["contextWeight", "answerWeight"]);
  if (!Array.isArray(o.phases) || o.phases.length === 0) {
    throw new InputError(`${file}: phases: expected a non-empty list of phases`);
  }
  const phases = o.phases.map((p: unknown, i: number) =>
    parsePhase(file, `phases[${i}]`, p, model)
  );
  const ev = obj(file, "eval", o.eval, ["lengths", "cases"], ["lines", "keys"]);
  if (!Array.isArray(ev.lengths)) {
    throw new InputError(`${file}: eval.lengths: expected a list of lengths`);
  }
  return {
    seed: num(file, "seed", o.seed, Number.isInteger, "an integer"),
    model,
    tokenizer,
    optimizer: parseOptimizer(file, op, phases),
    loss: {
      contextWeight: nonNeg(file, "loss.contextWeight", l.contextWeight),
      answerWeight: nonNeg(file, "loss.answerWeight", l.answerWeight),
    },
    phases,
    checkpointEvery: posInt(file, "checkpointEvery", o.checkpointEvery),
    evalEvery: posInt(file, "evalEvery", o.evalEvery),
    eval: {
      lengths: ev.lengths.map((v: unknown, i: number) => posInt(file, `eval.lengths[${i}]`, v)),
      cases: num(
        file,
        "eval.cases",
        ev.cases,
        (n) => Number.isInteger(n) && n >= 0,
        "a non-negative integer",
      ),
      ...("lines" in ev ? { lines: evalLines(file, ev.lines) } : {}),
      ...("keys" in ev ? { keys: evalKeys(file, ev.keys) } : {}),
    },
  };
}

/** `model`: positive sizes, heads of even size, kv heads dividing the heads. */
function parseModel(file: string, v: unknown): TrainConfig["model"] {
  const m = obj(file, "model", v, [
    "hidden",
    "layers",
    "heads",
    "kvHeads",
    "intermediate",
    "maxPositions",
    "ropeTheta",
  ], ["tieEmbeddings"]);
  if ("tieEmbeddings" in m && typeof m.tieEmbeddings !== "boolean") {
    throw new InputError(
      `${file}: model.tieEmbeddings: expected true or false, got ${
        JSON.stringify(m.tieEmbeddings)
      }`,
    );
  }
  const model = {
    hidden: posInt(file, "model.hidden", m.hidden),
    layers: posInt(file, "model.layers", m.layers),
    heads: posInt(file, "model.heads", m.heads),
    kvHeads: posInt(file, "model.kvHeads", m.kvHeads),
    intermediate: posInt(file, "model.intermediate", m.intermediate),
    maxPositions: posInt(file, "model.maxPositions", m.maxPositions),
    ropeTheta: num(file, "model.ropeTheta", m.ropeTheta, (n) => n > 0, "a positive number"),
    // only when set, so the hash of recipes without it is unchanged
    ...(m.tieEmbeddings === true ? { tieEmbeddings: true } : {}),
  };
  if (model.hidden % model.heads !== 0 || (model.hidden / model.heads) % 2 !== 0) {
    throw new InputError(
      `${file}: model.heads: hidden ${model.hidden} must split into heads of even size`,
    );
  }
  if (model.heads % model.kvHeads !== 0) {
    throw new InputError(
      `${file}: model.kvHeads: ${model.kvHeads} must divide heads ${model.heads}`,
    );
  }
  return model;
}

/** `tokenizer`: the vocabulary size and which keys its sample holds. */
function parseTokenizer(file: string, v: unknown): TrainConfig["tokenizer"] {
  const t = obj(file, "tokenizer", v, ["vocabSize"], ["keys"]);
  if ("keys" in t && t.keys !== "train-words" && t.keys !== "none") {
    throw new InputError(
      `${file}: tokenizer.keys: expected "train-words" or "none", got ${JSON.stringify(t.keys)}`,
    );
  }
  return {
    vocabSize: num(
      file,
      "tokenizer.vocabSize",
      t.vocabSize,
      (n) => Number.isInteger(n) && n >= 259,
      "an integer ≥ 259",
    ),
    // only when set, so the hash of recipes without it is unchanged
    ...(t.keys === "none" ? { keys: "none" as const } : {}),
  };
}

/** `optimizer`: AdamW with a cosine schedule; restarts within the phases' steps. */
function parseOptimizer(
  file: string,
  op: Record<string, unknown>,
  phases: Phase[],
): TrainConfig["optimizer"] {
  const unit = (p: string, v: unknown) =>
    num(file, p, v, (n) => n >= 0 && n < 1, "a number in [0, 1)");
  return {
    lr: num(file, "optimizer.lr", op.lr, (n) => n > 0, "a positive number"),
    minLrRatio: num(
      file,
      "optimizer.minLrRatio",
      op.minLrRatio,
      (n) => n >= 0 && n <= 1,
      "a number in [0, 1]",
    ),
    warmup: num(
      file,
      "optimizer.warmup",
      op.warmup,
      (n) => Number.isInteger(n) && n >= 0,
      "a non-negative integer",
    ),
    weightDecay: nonNeg(file, "optimizer.weightDecay", op.weightDecay),
    beta1: unit("optimizer.beta1", op.beta1),
    beta2: unit("optimizer.beta2", op.beta2),
    eps: num(file, "optimizer.eps", op.eps, (n) => n > 0, "a positive number"),
    clip: num(file, "optimizer.clip", op.clip, (n) => n > 0, "a positive number"),
    ...("restarts" in op ? { restarts: restartsOf(file, op.restarts, phases) } : {}),
    ...("restartWarmups" in op
      ? { restartWarmups: restartWarmupsOf(file, op.restartWarmups, op.restarts) }
      : {}),
  };
}

/** One curriculum phase (`at` is its path, e.g. `phases[2]`). */
function parsePhase(file: string, at: string, p: unknown, model: TrainConfig["model"]): Phase {
  const ph = obj(file, at, p, ["steps", "T", "B", "lines", "mix"], [
    "repeatVocab",
    "answer",
    "valueWeight",
    "lrScale",
    "warmup",
    "keys",
    "spread",
    "spreadShare",
  ]);
  if ("keys" in ph && ph.keys !== "train-words" && ph.keys !== "varied") {
    throw new InputError(
      `${file}: ${at}.keys: expected "train-words" or "varied", got ${JSON.stringify(ph.keys)}`,
    );
  }
  if ("answer" in ph && ph.answer !== "value" && ph.answer !== "echo") {
    throw new InputError(
      `${file}: ${at}.answer: expected "value" or "echo", got ${JSON.stringify(ph.answer)}`,
    );
  }
  const lines = ph.lines;
  if (!Array.isArray(lines) || lines.length !== 2) {
    throw new InputError(
      `${file}: ${at}.lines: expected [min, max], got ${JSON.stringify(lines)}`,
    );
  }
  const lo = posInt(file, `${at}.lines[0]`, lines[0]),
    hi = posInt(file, `${at}.lines[1]`, lines[1]);
  if (lo > hi) throw new InputError(`${file}: ${at}.lines: min ${lo} exceeds max ${hi}`);
  const mix = parseMix(file, `${at}.mix`, ph.mix);
  return {
    steps: posInt(file, `${at}.steps`, ph.steps),
    T: posInt(file, `${at}.T`, ph.T),
    B: posInt(file, `${at}.B`, ph.B),
    lines: [lo, hi],
    mix,
    ...phaseOptions(file, at, ph, model),
  };
}

/** A phase's `mix`: non-negative weights, at least one positive. */
function parseMix(file: string, at: string, v: unknown): Phase["mix"] {
  const mx = obj(file, at, v, ["brown", "longeval", "multiQuery", "copy"], ["repeat", "recall"]);
  const mix = {
    brown: nonNeg(file, `${at}.brown`, mx.brown),
    longeval: nonNeg(file, `${at}.longeval`, mx.longeval),
    multiQuery: nonNeg(file, `${at}.multiQuery`, mx.multiQuery),
    copy: nonNeg(file, `${at}.copy`, mx.copy),
    repeat: "repeat" in mx ? nonNeg(file, `${at}.repeat`, mx.repeat) : 0,
    recall: "recall" in mx ? nonNeg(file, `${at}.recall`, mx.recall) : 0,
  };
  if (Object.values(mix).reduce((a, w) => a + w, 0) <= 0) {
    throw new InputError(`${file}: ${at}: at least one weight must be positive`);
  }
  return mix;
}

/** A phase's optional fields, each present only when the recipe sets it. */
function phaseOptions(
  file: string,
  at: string,
  ph: Record<string, unknown>,
  model: TrainConfig["model"],
): Partial<Phase> {
  const intField = (key: string, min: number, what: string) =>
    num(file, `${at}.${key}`, ph[key], (n) => Number.isInteger(n) && n >= min, what);
  return {
    ...("repeatVocab" in ph ? { repeatVocab: intField("repeatVocab", 2, "an integer ≥ 2") } : {}),
    ...(ph.answer === "echo" ? { answer: "echo" as const } : {}),
    ...("valueWeight" in ph
      ? { valueWeight: nonNeg(file, `${at}.valueWeight`, ph.valueWeight) }
      : {}),
    ...("lrScale" in ph
      ? { lrScale: num(file, `${at}.lrScale`, ph.lrScale, (n) => n > 0, "a positive number") }
      : {}),
    ...("warmup" in ph ? { warmup: intField("warmup", 0, "a non-negative integer") } : {}),
    ...(ph.keys === "varied" ? { keys: "varied" as const } : {}),
    ...("spread" in ph
      ? {
        spread: num(file, `${at}.spread`, ph.spread, (n) =>
          Number.isInteger(n) && n >= posInt(file, `${at}.T`, ph.T) &&
          n <= model.maxPositions, `an integer between T and model.maxPositions`),
      }
      : {}),
    ...("spreadShare" in ph
      ? { spreadShare: unit01(file, `${at}.spreadShare`, ph.spreadShare) }
      : {}),
  };
}

function unit01(file: string, path: string, v: unknown): number {
  return num(file, path, v, (n) => n >= 0 && n <= 1, "a number in [0, 1]");
}

function evalLines(file: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new InputError(`${file}: eval.lines: expected a non-empty list of line counts`);
  }
  return v.map((x, i) =>
    num(file, `eval.lines[${i}]`, x, (n) => Number.isInteger(n) && n >= 2, "an integer ≥ 2")
  );
}

function evalKeys(file: string, v: unknown): EvalKeySource[] {
  if (
    !Array.isArray(v) || v.length === 0 ||
    v.some((k) => !EVAL_KEY_SOURCES.includes(k as EvalKeySource))
  ) {
    throw new InputError(
      `${file}: eval.keys: expected a non-empty list of ${EVAL_KEY_SOURCES.join(", ")}, got ${
        JSON.stringify(v)
      }`,
    );
  }
  return v as EvalKeySource[];
}

/** Reads and validates a recipe file. */
export async function loadTrainConfig(path: string): Promise<TrainConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    throw new InputError(`${path}: cannot read the training config`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path}: invalid JSON: ${e instanceof Error ? e.message : e}`);
  }
  return parseTrainConfig(json, path);
}

function restartsOf(file: string, v: unknown, phases: Phase[]): number[] {
  const total = phases.reduce((a, p) => a + p.steps, 0);
  if (
    !Array.isArray(v) ||
    v.some((s, i) =>
      !Number.isInteger(s) || s <= 0 || s >= total || (i > 0 && s <= (v[i - 1] as number))
    )
  ) {
    throw new InputError(
      `${file}: optimizer.restarts: expected increasing steps between 1 and ${total - 1} ` +
        `(the recipe's last step), got ${JSON.stringify(v)}`,
    );
  }
  return v as number[];
}

function restartWarmupsOf(file: string, v: unknown, restarts: unknown): number[] {
  const n = Array.isArray(restarts) ? restarts.length : 0;
  if (
    !Array.isArray(v) || v.length !== n || v.some((w) => !Number.isInteger(w) || w < 0)
  ) {
    throw new InputError(
      `${file}: optimizer.restartWarmups: expected ${n} non-negative integers (one per ` +
        `optimizer.restarts entry), got ${JSON.stringify(v)}`,
    );
  }
  return v as number[];
}

/** Total optimizer steps of a recipe. */
export function totalSteps(c: TrainConfig): number {
  return c.phases.reduce((a, p) => a + p.steps, 0);
}

/**
 * The phase that contains `step` (0-based): the phase, its index, and how many of its steps
 * precede `step`.
 */
export function phaseAt(
  c: TrainConfig,
  step: number,
): { phase: Phase; index: number; within: number } {
  let s = step;
  for (const [index, phase] of c.phases.entries()) {
    if (s < phase.steps) return { phase, index, within: s };
    s -= phase.steps;
  }
  const last = c.phases.at(-1)!;
  return { phase: last, index: c.phases.length - 1, within: s + last.steps };
}

/** The factor a phase applies to the recipe's learning rate at its `within`-th step. */
export function phaseLrFactor(phase: Phase, within: number): number {
  const ramp = phase.warmup ? Math.min(1, (within + 1) / phase.warmup) : 1;
  return (phase.lrScale ?? 1) * ramp;
}
