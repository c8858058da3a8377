/**
 * LongEval "lines": a synthetic long-context retrieval benchmark. A prompt lists N lines
 * `line {adjective}-{noun}: REGISTER_CONTENT is <{value}>` and then asks for the value of one of
 * them; the answer is correct when the last integer in the model's output equals that value.
 *
 * This module generates cases at a target prompt length (in the model's tokens), spreads the
 * asked line evenly over position deciles, scores answers, reads and writes the LongChat JSONL
 * format, and summarises accuracy per decile. Exact strings: DESIGN.md §5.1; files: §5.2.
 *
 * @module
 */

import { writeFileAtomic } from "../../runtime/atomic.ts";
import { InputError } from "../../runtime/errors.ts";
import { Rng } from "../../runtime/rng.ts";
import { ALL_WORDS, type WordLists } from "./words.ts";

/** One benchmark case. */
export interface LongEvalCase {
  /** e.g. `lines-n1024-s0-3` (generated) or taken from the JSONL file */
  id: string;
  /** the full prompt: header, lines, question */
  prompt: string;
  /** the asked line's value */
  expected: number;
  /** the asked line's key `adjective-noun`, when known */
  key: string | null;
  /** 0-based index of the asked line among the lines, when known */
  lineIndex: number | null;
  /** number of lines in the prompt, when known */
  numLines: number | null;
  /** position decile of the asked line, `floor(10 * lineIndex / numLines)` in 0..9, when known */
  decile: number | null;
  /** the token length the prompt was generated to fit, when known */
  targetLength: number | null;
  /** the prompt's length in the model's tokens, when known */
  tokens: number | null;
}

/** The text before the lines; ends with `"Now the record start:\n\n"`. */
export const HEADER = "Below is a record of lines I want you to remember. " +
  "Each line begins with 'line <line index>' and contains a '<REGISTER_CONTENT>' at the end " +
  "of the line as a numerical value. For each line index, memorize its corresponding " +
  "<REGISTER_CONTENT>. At the end of the record, I will ask you to retrieve the corresponding " +
  "<REGISTER_CONTENT> of a certain line index. Now the record start:\n\n";

/** Smallest value a line may hold. */
export const MIN_VALUE = 1;
/** Largest value a line may hold. */
export const MAX_VALUE = 50000;

/**
 * One record line, newline included.
 *
 * @param key the line's key, `adjective-noun`
 * @param value the line's register content
 * @returns `line {key}: REGISTER_CONTENT is <{value}>\n`
 * @example
 * ```ts
 * import { formatLine } from "./longeval.ts";
 * console.assert(formatLine("red-fox", 7) === "line red-fox: REGISTER_CONTENT is <7>\n");
 * ```
 */
export function formatLine(key: string, value: number): string {
  return `line ${key}: REGISTER_CONTENT is <${value}>\n`;
}

/**
 * The question that closes a prompt, exactly as in LongChat's published test files: it ends
 * with one space after "I need the number." (a model answers the prompt as it is).
 *
 * @param key the asked line's key
 * @returns the question text, starting with a newline and ending with a space
 * @example
 * ```ts
 * import { formatQuestion } from "./longeval.ts";
 * console.assert(formatQuestion("red-fox").endsWith("in line red-fox? I need the number. "));
 * ```
 */
export function formatQuestion(key: string): string {
  return `\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line ${key}? ` +
    "I need the number. ";
}

/** Options of {@link generateCases}. */
export interface GenerateOptions {
  /** number of cases */
  count: number;
  /** the largest prompt length in tokens; each prompt gets as many lines as fit */
  targetLength: number;
  /** seed for {@link Rng}; equal seeds give identical cases */
  seed: number;
  /** the model's token count of a text */
  countTokens: (text: string) => number;
  /**
   * the words keys are made from
   * @default ALL_WORDS (every adjective and noun of words.ts)
   */
  words?: WordLists;
  /**
   * draws one key (for example {@link evalKey} of `keys.ts`); when given, `words` is ignored
   * and keys are drawn until distinct
   */
  drawKey?: (rng: Rng) => string;
}

/**
 * The index of the asked line among `n` lines for decile `d`: the decile's index range scaled by
 * `u` in [0, 1). When the decile holds no index (n < 10), the nearest index at or after it.
 */
function askedIndex(n: number, d: number, u: number): number {
  const lo = Math.floor((d * n + 9) / 10); // ceil(d n / 10)
  const hi = Math.floor(((d + 1) * n + 9) / 10) - 1; // ceil((d+1) n / 10) - 1
  if (hi < lo) return Math.min(lo, n - 1);
  return lo + Math.floor(u * (hi - lo + 1));
}

/**
 * The random material of one case: the asked key and value, a position fraction, and a pool of
 * other lines with distinct keys drawn lazily in a fixed order (so the pool's k-th line does not
 * depend on how far a search has looked).
 */
class CasePool {
  readonly askedKey: string;
  readonly askedValue: number;
  readonly u: number;
  readonly maxLines: number;
  readonly #rng: Rng;
  readonly #draw: (rng: Rng) => string;
  readonly #used = new Set<string>();
  readonly #lines: string[] = [];

  constructor(rng: Rng, draw: (rng: Rng) => string, maxLines: number) {
    this.#rng = rng;
    this.#draw = draw;
    this.maxLines = maxLines;
    this.u = rng.next();
    this.askedKey = this.#drawKey();
    this.askedValue = rng.int(MIN_VALUE, MAX_VALUE);
  }

  #drawKey(): string {
    for (let tries = 0;; tries++) {
      const key = this.#draw(this.#rng);
      if (!this.#used.has(key)) {
        this.#used.add(key);
        return key;
      }
      if (tries > 100_000) throw new RangeError("generateCases: the key source repeats itself");
    }
  }

  /** The first `m` other lines (m < maxLines). */
  others(m: number): string[] {
    while (this.#lines.length < m) {
      const key = this.#drawKey();
      this.#lines.push(formatLine(key, this.#rng.int(MIN_VALUE, MAX_VALUE)));
    }
    return this.#lines;
  }

  /** The prompt with `n` lines (n ≥ 1), the asked one at its decile position. */
  prompt(n: number, decile: number): { prompt: string; lineIndex: number } {
    const others = this.others(n - 1);
    const i = askedIndex(n, decile, this.u);
    const prompt = HEADER + others.slice(0, i).join("") +
      formatLine(this.askedKey, this.askedValue) + others.slice(i, n - 1).join("") +
      formatQuestion(this.askedKey);
    return { prompt, lineIndex: i };
  }
}

/**
 * Generates LongEval lines cases whose prompts fit a token budget.
 *
 * Each case has distinct `adjective-noun` keys, values uniform in 1..50000, and as many lines as
 * fit in `targetLength` tokens (found by an exponential then binary search over the number of
 * lines; cases may differ slightly in line count because keys tokenize differently). Case `i`
 * asks a line in decile `i mod 10`, at a random position within it.
 *
 * @param opts see {@link GenerateOptions}
 * @returns `count` cases with every field filled
 * @throws {RangeError} when `targetLength` is too small for 2 lines (the message gives the
 *   minimum), when it needs more lines than the word lists give keys, or on bad options
 * @example
 * ```ts
 * import { generateCases } from "./longeval.ts";
 * const cases = generateCases({
 *   count: 2, targetLength: 200, seed: 0, countTokens: (s) => Math.ceil(s.length / 4),
 * });
 * console.assert(cases.length === 2 && cases[0]!.tokens! <= 200);
 * ```
 */
export function generateCases(opts: GenerateOptions): LongEvalCase[] {
  const { count, targetLength, seed, countTokens } = opts;
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`generateCases: count must be an integer >= 0, got ${count}`);
  }
  if (!Number.isInteger(targetLength) || targetLength < 1) {
    throw new RangeError(
      `generateCases: targetLength must be an integer >= 1, got ${targetLength}`,
    );
  }
  if (!Number.isFinite(seed)) throw new RangeError(`generateCases: seed must be finite`);
  const source = opts.words ?? ALL_WORDS;
  const words: WordLists = {
    adjectives: [...new Set(source.adjectives)],
    nouns: [...new Set(source.nouns)],
  };
  if (words.adjectives.length === 0 || words.nouns.length === 0) {
    throw new RangeError("generateCases: words must hold at least one adjective and one noun");
  }
  if (words.adjectives.length * words.nouns.length < 2) {
    throw new RangeError("generateCases: words must give at least 2 distinct keys");
  }

  const draw = opts.drawKey ??
    ((r: Rng) => `${r.pick(words.adjectives)}-${r.pick(words.nouns)}`);
  const maxLines = opts.drawKey ? 100_000 : words.adjectives.length * words.nouns.length;
  const rng = new Rng(seed);
  const cases: LongEvalCase[] = [];
  for (let c = 0; c < count; c++) {
    const pool = new CasePool(new Rng(rng.int(0, 0x7fffffff)), draw, maxLines);
    const decile = c % 10;
    const tokensAt = (n: number) => countTokens(pool.prompt(n, decile).prompt);

    const minTokens = tokensAt(2);
    if (minTokens > targetLength) {
      throw new RangeError(
        `generateCases: targetLength ${targetLength} is too small: a prompt with 2 lines ` +
          `needs ${minTokens} tokens (minimum targetLength ${minTokens})`,
      );
    }
    // Exponential search for an upper bound, then binary search: fits(lo), !fits(hi).
    let lo = 2;
    let hi = 4;
    while (hi <= pool.maxLines && tokensAt(hi) <= targetLength) {
      lo = hi;
      hi *= 2;
    }
    if (hi > pool.maxLines) {
      if (tokensAt(pool.maxLines) <= targetLength) {
        throw new RangeError(
          `generateCases: targetLength ${targetLength} fits all ${pool.maxLines} lines the ` +
            `word lists can key; give more words or a smaller targetLength`,
        );
      }
      hi = pool.maxLines;
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (tokensAt(mid) <= targetLength) lo = mid;
      else hi = mid;
    }

    const { prompt, lineIndex } = pool.prompt(lo, decile);
    cases.push({
      id: `lines-n${targetLength}-s${seed}-${c}`,
      prompt,
      expected: pool.askedValue,
      key: pool.askedKey,
      lineIndex,
      numLines: lo,
      decile: Math.floor((10 * lineIndex) / lo),
      targetLength,
      tokens: countTokens(prompt),
    });
  }
  return cases;
}

/** Options of {@link generateCasesByLines}. */
export interface LinesOptions {
  /** number of cases */
  count: number;
  /** record lines of every prompt (LongChat's levels are 200, 300, …, 680; ≥ 2) */
  lines: number;
  /** seed for {@link Rng}; equal seeds give identical cases */
  seed: number;
  /** the model's token count of a text (fills `tokens`) */
  countTokens: (text: string) => number;
  /** draws one key, e.g. {@link evalKey} of `keys.ts`; default adjective–noun from words.ts */
  drawKey?: (rng: Rng) => string;
}

/**
 * Generates LongEval lines cases with a fixed number of record lines, as LongChat's test files
 * are organised (`<n>_lines.jsonl`), whatever their length in the model's tokens. Case `i` asks
 * a line in decile `i mod 10`.
 *
 * @param opts see {@link LinesOptions}
 * @returns `count` cases
 * @throws {RangeError} when `lines < 2` or `count < 0`
 * @example
 * ```ts
 * import { generateCasesByLines } from "./longeval.ts";
 * const [c] = generateCasesByLines({ count: 1, lines: 50, seed: 0, countTokens: (s) => s.length });
 * console.assert(c!.numLines === 50);
 * ```
 */
export function generateCasesByLines(opts: LinesOptions): LongEvalCase[] {
  const { count, lines, seed, countTokens } = opts;
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`generateCasesByLines: count must be an integer >= 0, got ${count}`);
  }
  if (!Number.isInteger(lines) || lines < 2) {
    throw new RangeError(`generateCasesByLines: lines must be an integer >= 2, got ${lines}`);
  }
  const draw = opts.drawKey ??
    ((r: Rng) => `${r.pick(ALL_WORDS.adjectives)}-${r.pick(ALL_WORDS.nouns)}`);
  const rng = new Rng(seed);
  const cases: LongEvalCase[] = [];
  for (let c = 0; c < count; c++) {
    const pool = new CasePool(new Rng(rng.int(0, 0x7fffffff)), draw, Infinity);
    const decile = c % 10;
    const { prompt, lineIndex } = pool.prompt(lines, decile);
    cases.push({
      id: `lines-l${lines}-s${seed}-${c}`,
      prompt,
      expected: pool.askedValue,
      key: pool.askedKey,
      lineIndex,
      numLines: lines,
      decile: Math.floor((10 * lineIndex) / lines),
      targetLength: null,
      tokens: countTokens(prompt),
    });
  }
  return cases;
}

/**
 * Scores a model's answer: the prediction is the last run of digits in the output.
 *
 * @param output the model's generated text
 * @param expected the asked line's value
 * @returns whether the prediction equals `expected`, and the prediction (null when the output
 *   holds no digits)
 * @example
 * ```ts
 * import { scoreAnswer } from "./longeval.ts";
 * console.assert(scoreAnswer("It is <1234>.", 1234).correct);
 * ```
 */
export function scoreAnswer(
  output: string,
  expected: number,
): { correct: boolean; predicted: number | null } {
  const runs = output.match(/\d+/g);
  const last = runs?.[runs.length - 1];
  if (last === undefined) return { correct: false, predicted: null };
  const predicted = Number(last);
  return { correct: predicted === expected, predicted };
}

/** Per-decile and overall accuracy of a set of scored cases. */
export interface LongEvalSummary {
  /** fraction correct over all results (0 when there are none) */
  accuracy: number;
  /** number of results */
  n: number;
  /** one entry per decile that has at least one case, ascending; cases without a decile are left out */
  byDecile: { decile: number; accuracy: number; n: number }[];
}

/**
 * Summarises scored cases.
 *
 * @param results each case with whether it was answered correctly
 * @returns overall accuracy and accuracy per position decile
 * @example
 * ```ts
 * import { summarize } from "./longeval.ts";
 * console.assert(summarize([]).n === 0);
 * ```
 */
export function summarize(results: { c: LongEvalCase; correct: boolean }[]): LongEvalSummary {
  const correctBy = new Map<number, number>();
  const countBy = new Map<number, number>();
  let correct = 0;
  for (const r of results) {
    if (r.correct) correct++;
    const d = r.c.decile;
    if (d === null) continue;
    countBy.set(d, (countBy.get(d) ?? 0) + 1);
    correctBy.set(d, (correctBy.get(d) ?? 0) + (r.correct ? 1 : 0));
  }
  const byDecile = [...countBy.keys()].sort((a, b) => a - b).map((decile) => {
    const n = countBy.get(decile)!;
    return { decile, accuracy: correctBy.get(decile)! / n, n };
  });
  return {
    accuracy: results.length === 0 ? 0 : correct / results.length,
    n: results.length,
    byDecile,
  };
}

const LINE_KEY = /^line ([^:\s]+):/;
/** A whole record line: key and value (the newline is optional). */
const LINE = /^line ([^:\s]+): REGISTER_CONTENT is <(-?\d+)>\n?$/;

function describe(v: unknown): string {
  return v === undefined ? "nothing" : JSON.stringify(v);
}

/** Turns a V8 JSON.parse message into `line:col: what` where it states a position. */
function jsonError(where: string, lineNo: number, message: string): InputError {
  const m = / in JSON at position (\d+)(?: \(line \d+ column \d+\))?/.exec(message);
  if (m === null) return new InputError(`${where}:${lineNo}: invalid JSON: ${message}`);
  const col = Number(m[1]) + 1;
  const what = message.slice(0, m.index) + message.slice(m.index + m[0].length);
  return new InputError(`${where}:${lineNo}:${col}: invalid JSON: ${what}`);
}

function stemOf(path: string): string {
  const base = path.split(/[\\/]/).pop() ?? path;
  return base.replace(/\.jsonl?$/, "");
}

/**
 * Reads LongEval cases in the LongChat JSONL format: one object per line with `prompt` (string,
 * taken exactly as written, trailing space included) and `expected_number` (integer or numeric
 * string). It reads both layouts (DESIGN.md §5.2):
 *
 * - LongChat's published test files, with exactly `random_idx` = `[key, lineIndex]` (for example
 *   `["torpid-kid", 7]`), `expected_number`, `num_lines`, `token_size` (LLaMA tokens there),
 *   `correct_line`, `prompt` and `prompt_length` (-1);
 * - the files this project wrote before, with `random_idx` = `[lineIndex, ...]` and its own `id`
 *   and `target_length`.
 *
 * Every field but `prompt` and `expected_number` is optional; when the key is given twice (in
 * `random_idx` and in `correct_line`) both must agree, and `correct_line`'s value must equal
 * `expected_number`. Blank lines are skipped. A case without `id` is named `{file stem}-{index}`.
 *
 * @param path the .jsonl file
 * @returns the cases in file order
 * @throws {InputError} naming `path:line:` (and the column for a JSON syntax error) when the
 *   file is missing, a line is not a JSON object, a field has the wrong type, fields disagree,
 *   or there are no cases
 * @example
 * ```ts ignore
 * import { readLongEvalJsonl } from "./longeval.ts";
 * const cases = await readLongEvalJsonl("data/longeval/testdata/longchat_layout.jsonl");
 * ```
 */
export async function readLongEvalJsonl(path: string): Promise<LongEvalCase[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(`${path}: cannot read LongEval cases: file not found`);
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new InputError(`${path}: cannot read LongEval cases: expected a file, got a folder`);
    }
    throw e;
  }
  const stem = stemOf(path);
  const cases: LongEvalCase[] = [];
  const rows = text.split("\n");
  for (let r = 0; r < rows.length; r++) {
    const lineNo = r + 1;
    const row = rows[r]!.replace(/\r$/, "");
    if (row.trim() === "") continue;
    const at = `${path}:${lineNo}:`;
    let obj: unknown;
    try {
      obj = JSON.parse(row);
    } catch (e) {
      throw jsonError(path, lineNo, e instanceof Error ? e.message : String(e));
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      throw new InputError(`${at} expected a JSON object, got ${describe(obj)}`);
    }
    const o = obj as Record<string, unknown>;
    const opt = (name: string): unknown => (o[name] === null ? undefined : o[name]);

    const prompt = o.prompt;
    if (prompt === undefined) throw new InputError(`${at} missing field "prompt"`);
    if (typeof prompt !== "string") {
      throw new InputError(`${at} prompt: expected a string, got ${describe(prompt)}`);
    }

    const rawExpected = o.expected_number;
    let expected: number | null = null;
    if (typeof rawExpected === "number" && Number.isSafeInteger(rawExpected)) {
      expected = rawExpected;
    } else if (typeof rawExpected === "string" && /^\s*-?\d+\s*$/.test(rawExpected)) {
      const v = Number(rawExpected.trim());
      if (Number.isSafeInteger(v)) expected = v;
    }
    if (expected === null) {
      throw new InputError(
        `${at} expected_number: expected an integer, got ${describe(rawExpected)}`,
      );
    }

    const intField = (name: string, min: number): number | null => {
      const v = opt(name);
      if (v === undefined) return null;
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
        throw new InputError(`${at} ${name}: expected an integer >= ${min}, got ${describe(v)}`);
      }
      return v;
    };
    const numLines = intField("num_lines", 1);
    const tokens = intField("token_size", 0);
    const targetLength = intField("target_length", 1);

    const promptLength = opt("prompt_length");
    if (
      promptLength !== undefined &&
      (typeof promptLength !== "number" || !Number.isSafeInteger(promptLength) || promptLength < -1)
    ) {
      throw new InputError(
        `${at} prompt_length: expected an integer >= -1, got ${describe(promptLength)}`,
      );
    }

    // random_idx: [key, lineIndex] in LongChat's files, [lineIndex, ...] in this project's older ones
    let lineIndex: number | null = null;
    let idxKey: string | null = null;
    const rawIdx = opt("random_idx");
    if (rawIdx !== undefined) {
      const isIndex = (v: unknown): v is number =>
        typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
      const a = Array.isArray(rawIdx) ? rawIdx : null;
      if (
        a !== null && a.length === 2 && typeof a[0] === "string" && a[0] !== "" && isIndex(a[1])
      ) {
        idxKey = a[0];
        lineIndex = a[1];
      } else if (a !== null && isIndex(a[0])) {
        lineIndex = a[0];
      } else {
        throw new InputError(
          `${at} random_idx: expected [key, line index >= 0] (LongChat's layout) or ` +
            `[line index >= 0, ...], got ${describe(rawIdx)}`,
        );
      }
    }
    const idxAt = idxKey === null ? "random_idx[0]" : "random_idx[1]";
    if (lineIndex !== null && numLines !== null && lineIndex >= numLines) {
      throw new InputError(
        `${at} ${idxAt}: expected a line index below num_lines ${numLines}, got ${lineIndex}`,
      );
    }

    let key: string | null = idxKey;
    const correctLine = opt("correct_line");
    if (correctLine !== undefined) {
      if (typeof correctLine !== "string") {
        throw new InputError(`${at} correct_line: expected a string, got ${describe(correctLine)}`);
      }
      const m = LINE.exec(correctLine);
      if (m !== null) {
        const [, lineKey, value] = m as unknown as [string, string, string];
        if (idxKey !== null && lineKey !== idxKey) {
          throw new InputError(
            `${at} correct_line: names key ${JSON.stringify(lineKey)} but random_idx[0] is ` +
              `${JSON.stringify(idxKey)}`,
          );
        }
        if (Number(value) !== expected) {
          throw new InputError(
            `${at} correct_line: holds the value ${value} but expected_number is ${expected}`,
          );
        }
        key = lineKey;
      } else {
        key ??= LINE_KEY.exec(correctLine)?.[1] ?? null;
      }
    }

    const rawId = opt("id");
    if (rawId !== undefined && (typeof rawId !== "string" || rawId === "")) {
      throw new InputError(`${at} id: expected a non-empty string, got ${describe(rawId)}`);
    }

    cases.push({
      id: typeof rawId === "string" ? rawId : `${stem}-${cases.length}`,
      prompt,
      expected,
      key,
      lineIndex,
      numLines,
      decile: lineIndex !== null && numLines !== null
        ? Math.floor((10 * lineIndex) / numLines)
        : null,
      targetLength,
      tokens,
    });
  }
  if (cases.length === 0) {
    throw new InputError(`${path}: no cases: the file is empty or holds only blank lines`);
  }
  return cases;
}

/**
 * Writes cases in the layout of LongChat's published test files (DESIGN.md §5.2), atomically: to
 * a temporary file in the same folder, then renamed over `path`. Each line holds, in this order,
 * `random_idx` (`[key, lineIndex]`), `expected_number`, `num_lines`, `token_size` (the case's
 * `tokens`: this model's tokens, not LLaMA's), `correct_line`, `prompt` (as is) and
 * `prompt_length` (-1, as in LongChat's files). A field whose value the case does not know is left
 * out. {@link readLongEvalJsonl} reads the file back to the same cases, except that `id` becomes
 * `{file stem}-{index}` and `targetLength` null (the published layout has no place for them).
 *
 * @param path the .jsonl file to write (its folder is created if missing)
 * @param cases the cases
 * @returns when the file is in place
 * @example
 * ```ts ignore
 * import { generateCases, writeLongEvalJsonl } from "./longeval.ts";
 * const cases = generateCases({ count: 10, targetLength: 500, seed: 0, countTokens: (s) => s.length });
 * await writeLongEvalJsonl("/tmp/lines.jsonl", cases);
 * ```
 */
export async function writeLongEvalJsonl(path: string, cases: LongEvalCase[]): Promise<void> {
  let text = "";
  for (const c of cases) {
    const o: Record<string, unknown> = {};
    if (c.key !== null && c.lineIndex !== null) o.random_idx = [c.key, c.lineIndex];
    o.expected_number = c.expected;
    if (c.numLines !== null) o.num_lines = c.numLines;
    if (c.tokens !== null) o.token_size = c.tokens;
    if (c.key !== null) o.correct_line = formatLine(c.key, c.expected);
    o.prompt = c.prompt;
    o.prompt_length = -1;
    text += JSON.stringify(o) + "\n";
  }
  await writeFileAtomic(path, text);
}
