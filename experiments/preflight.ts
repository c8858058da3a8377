/**
 * What a run checks before it writes anything (`runExperiment`, experiments/run.ts): the model
 * folder whole (config, weight headers, tokenizer), every length servable by the model and the
 * data (profiling, the benchmarks' memory, a LongEval prompt, a perplexity window), and a LongEval
 * file readable, with warnings for what runs but may not be what the user wants.
 *
 * @module
 */
import { generateCases, type LongEvalCase, readLongEvalJsonl } from "../data/longeval/longeval.ts";
import {
  generateRulerCases,
  passkeySample,
  type RulerCase,
  type RulerOptions,
} from "../data/ruler/ruler.ts";
import { loadDuoPattern } from "../runtime/duo.ts";
import { brownText } from "../data/brown.ts";
import { InputError } from "../runtime/errors.ts";
import type { ModelConfig } from "../runtime/model.ts";
import { isMoa } from "../runtime/methods.ts";
import { checkModel, resolveModelDir } from "../runtime/session.ts";
import { MAX_GRADIENT_LENGTH, MAX_PROFILE_LENGTH } from "../solver/profile.ts";
import { checkLength, checkMemory } from "./limits.ts";
import type { Experiment } from "./schema.ts";

/** What {@link preflight} found. */
export interface Preflight {
  /** The model folder. */
  modelDir: string;
  /** The cases of a LongEval `file`, or null. */
  fileCases: LongEvalCase[] | null;
  /** The model's config. */
  config: ModelConfig;
  /**
   * Lines to print before running (`warning: …`): lengths past the model's context, cells whose
   * file cases were all dropped.
   */
  warnings: string[];
}

/** Counts a text's tokens as the model sees it (BOS included). */
type CountTokens = (text: string) => number;

/**
 * Checks everything that can be checked before any output is written: the model folder whole
 * (config, weight headers, tokenizer), the LongEval file readable, and every length servable by
 * the model and the data.
 * @param exp the experiment
 * @param source the experiment file, put before every message
 * @throws InputError naming the field and what is wrong
 */
export async function preflight(exp: Experiment, source?: string): Promise<Preflight> {
  try {
    return await checkInputs(exp);
  } catch (e) {
    if (e instanceof InputError && source) throw new InputError(`${source}: ${e.message}`);
    throw e;
  }
}

async function checkInputs(exp: Experiment): Promise<Preflight> {
  const modelDir = await resolveModelDir(exp.model);
  const { config, tokenizer } = await checkModel(modelDir);
  const countTokens = (t: string) =>
    tokenizer.encode(t).length + (config.bosTokenId === null ? 0 : 1);
  const warnings: string[] = [];
  if (exp.methods.some(isMoa)) warnings.push(...checkProfileLengths(exp, config, countTokens));
  warnings.push(...checkLengths(exp, config));
  const le = exp.benchmarks.longeval;
  let fileCases: LongEvalCase[] | null = null;
  if (le && "file" in le) {
    fileCases = await readLongEvalJsonl(le.file);
    if (le.limit !== null) fileCases = fileCases.slice(0, le.limit);
    warnings.push(
      ...droppedCases(fileCases.map((c) => countTokens(c.prompt)), exp.lengths, le.file),
    );
  } else if (le) {
    // every length must hold at least a two-line LongEval prompt in this model's tokens
    exp.lengths.forEach((length, i) => {
      casesOrRefusal(`lengths[${i}]: ${length} tokens`, "a LongEval case", {
        count: 1,
        targetLength: length,
        seed: exp.seed,
        countTokens,
      });
    });
  }
  const ruler = exp.benchmarks.ruler;
  if (ruler) {
    // every length must hold the smallest case of every task asked for
    exp.lengths.forEach((length, i) => {
      rulerCasesOrRefusal(`lengths[${i}]: ${length} tokens`, {
        tasks: ruler.tasks,
        count: ruler.tasks.length,
        targetLength: length,
        seed: exp.seed,
        countTokens,
      });
    });
  }
  if (exp.duo && exp.methods.includes("duo")) await checkDuo(exp, config, countTokens);
  if (exp.benchmarks.perplexity) {
    const have = tokenizer.encode(await brownText("heldout")).length;
    checkPerplexityText(exp.lengths, have);
  }
  return { modelDir, fileCases, config, warnings };
}

/**
 * LongEval cases of a length, or the InputError that says the length cannot hold one.
 * @param what the field and length, e.g. `lengths[1]: 64 tokens`
 * @param holds what it must hold, e.g. `a LongEval case`
 * @param options `generateCases`' options
 * @throws InputError `<what> cannot hold <holds> for this model: <why>`
 */
export function casesOrRefusal(
  what: string,
  holds: string,
  options: Parameters<typeof generateCases>[0],
): LongEvalCase[] {
  try {
    return generateCases(options);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new InputError(`${what} cannot hold ${holds} for this model: ${e.message}`);
  }
}

/**
 * RULER cases of a length, or the InputError that says the length cannot hold them.
 * @param what the field and length, e.g. `lengths[0]: 64 tokens`
 * @param options `generateRulerCases`' options
 * @throws InputError `<what> cannot hold RULER's <task>: <why>`
 */
export function rulerCasesOrRefusal(what: string, options: RulerOptions): RulerCase[] {
  try {
    return generateRulerCases(options);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new InputError(`${what} cannot hold RULER's ${e.message}`);
  }
}

/**
 * DuoAttention's gates can be had: a published pattern that reads and fits the model, or a
 * training length the profiler's memory holds with room for the passkeys.
 */
async function checkDuo(exp: Experiment, config: ModelConfig, countTokens: CountTokens) {
  const duo = exp.duo!;
  if (duo.pattern) {
    await loadDuoPattern(duo.pattern, config);
    return;
  }
  if (duo.length > MAX_GRADIENT_LENGTH) {
    throw new InputError(
      `duo.length: ${duo.length} tokens exceed the ${MAX_GRADIENT_LENGTH} the CPU gradient ` +
        `code can hold; train the gates on shorter prompts`,
    );
  }
  const need = countTokens(passkeySample(1, 10, exp.seed).text);
  if (need > duo.length) {
    throw new InputError(
      `duo.length: ${duo.length} tokens cannot hold the 10 passkeys of a training prompt ` +
        `(${need} tokens with this model's tokenizer)`,
    );
  }
}

/**
 * Profiled lengths: at most what the profiler holds, room for a calibration prompt and its
 * answer, and a warning past the model's context.
 * @returns warnings
 */
function checkProfileLengths(
  exp: Experiment,
  config: ModelConfig,
  countTokens: CountTokens,
): string[] {
  const warnings: string[] = [];
  exp.profile.lengths.forEach((n, i) => {
    if (n > MAX_PROFILE_LENGTH) {
      throw new InputError(
        `profile.lengths[${i}]: ${n} tokens exceed the ${MAX_PROFILE_LENGTH} the profiler takes ` +
          `(its time grows as T²); profile shorter lengths`,
      );
    }
    // calibration prompts leave room for a response of up to 48 tokens
    casesOrRefusal(`profile.lengths[${i}]: ${n} tokens`, "a calibration prompt and its answer", {
      count: 1,
      targetLength: n - 48,
      seed: exp.seed,
      countTokens,
    });
    const w = checkLength(config, n, `profile.lengths[${i}]: ${n} tokens`);
    if (w) warnings.push(w);
  });
  return warnings;
}

/**
 * Benchmark lengths: a warning past the model's context, a refusal far past it or when the KV
 * cache (of the throughput batch too) would not fit in memory.
 * @returns warnings
 */
function checkLengths(exp: Experiment, config: ModelConfig): string[] {
  const warnings: string[] = [];
  const t = exp.benchmarks.throughput;
  exp.lengths.forEach((n, i) => {
    const w = checkLength(config, n, `lengths[${i}]: ${n} tokens`);
    if (w) warnings.push(w);
    checkMemory(config, n, `lengths[${i}]: ${n} tokens`);
    if (t) {
      checkMemory(
        config,
        t.batch * (n + t.decode),
        `lengths[${i}]: throughput at ${n} tokens (+ ${t.decode} decoded) × batch ${t.batch}`,
      );
    }
  });
  return warnings;
}

/**
 * A perplexity window is `length` tokens scored after one more: the held-out text must hold it.
 * @param have the held-out text's length in the model's tokens
 */
function checkPerplexityText(lengths: number[], have: number): void {
  lengths.forEach((n, i) => {
    if (n + 1 > have) {
      throw new InputError(
        `lengths[${i}]: perplexity at ${n} tokens needs a window of ${n + 1} tokens of held-out ` +
          `text, but the held-out Brown text is ${have} tokens long for this model; use lengths ` +
          `up to ${have - 1} or leave out benchmarks.perplexity`,
      );
    }
  });
}

/**
 * Warnings for a LongEval file's cases that no length gets: each case goes to the smallest
 * length its prompt fits in (see `bucketByLength` in stages.ts), so a length can end up with none (its
 * accuracy is then missing) and cases longer than every length are dropped.
 * @param tokens each case's prompt length in the model's tokens
 */
function droppedCases(tokens: number[], lengths: number[], file: string): string[] {
  const out: string[] = [];
  const sorted = [...lengths].sort((a, b) => a - b);
  sorted.forEach((level, k) => {
    const below = k === 0 ? 0 : sorted[k - 1]!;
    if (!tokens.some((n) => n > below && n <= level)) {
      out.push(
        `warning: lengths[${lengths.indexOf(level)}]: no case of ${file} has a prompt of ` +
          `${below + 1}–${level} tokens, so LongEval accuracy at ${level} is missing ` +
          `(an empty value in metrics.csv, n/a in the table)`,
      );
    }
  });
  const longest = sorted.at(-1)!;
  const over = tokens.filter((n) => n > longest).length;
  if (over > 0) {
    out.push(
      `warning: ${over} of ${tokens.length} cases of ${file} are longer than the longest ` +
        `length ${longest} and are left out`,
    );
  }
  return out;
}
