/**
 * RULER's synthetic tasks (Hsieh et al., "RULER: What's the Real Context Size of Your
 * Long-Context Language Models?", 2024), generated here from a seed at a target prompt length in
 * the model's tokens, and scored as RULER scores them: the share of the expected strings that
 * occur in the answer, ignoring case. The prompts are this project's own wording; every haystack
 * is filler sentences ({@link FILLER}), never an essay corpus. DESIGN.md §5.3 lists the tasks.
 *
 * - `niah_single_1..3`: one needle ("The secret number for KEY is: VALUE.") in a repeated block
 *   of filler (1), in filler sentences drawn at random (2), the same with a UUID value (3).
 * - `niah_multikey_1..3`: the asked needle among 3 other needles in drawn filler (1); in a
 *   haystack made of other needles only (2); the same with UUID keys and values (3).
 * - `niah_multivalue`: one key with 4 values, all asked. `niah_multiquery`: 4 keys, all asked.
 * - `vt` (variable tracking): a chain VAR A = 12345, VAR B = VAR A, … (4 hops) in repeated
 *   filler; the answer names every variable holding the value.
 * - `cwe` (common-word extraction): a numbered list of words where 10 words occur far more
 *   often than the rest; the answer names those 10.
 * - `fwe` (frequent-word extraction): coded words with Zipf frequencies (exponent 2); the most
 *   frequent one is written as dots and ignored; the answer names the next 3.
 *
 * Each prompt ends with the start of its answer (RULER's answer prefix), and holds as many
 * haystack units (sentences, needles, list entries, words) as fit the target length.
 *
 * @module
 */
import { Rng } from "../../runtime/rng.ts";
import { ADJECTIVES, NOUNS } from "../longeval/words.ts";

/** The tasks, in RULER's order (without its two QA tasks, which need external corpora). */
export const RULER_TASKS = [
  "niah_single_1",
  "niah_single_2",
  "niah_single_3",
  "niah_multikey_1",
  "niah_multikey_2",
  "niah_multikey_3",
  "niah_multivalue",
  "niah_multiquery",
  "vt",
  "cwe",
  "fwe",
] as const;
/** A RULER task name. */
export type RulerTask = (typeof RULER_TASKS)[number];

/** One generated case. */
export interface RulerCase {
  /** `<task>-n<length>-s<seed>-<index>` */
  id: string;
  /** The task. */
  task: RulerTask;
  /** The whole prompt, ending with the start of the answer. */
  prompt: string;
  /** The strings the answer should contain. */
  expected: string[];
  /** Most tokens the answer may take. */
  maxNew: number;
  /** The token length the prompt was generated to fit. */
  targetLength: number;
  /** The prompt's length in the model's tokens. */
  tokens: number;
}

/**
 * Filler sentences, written for this project: the haystack of every task. A repeated block is
 * the first five; drawn filler picks any of them.
 */
export const FILLER: readonly string[] = [
  "The river runs past the old mill and on toward the sea.",
  "A cold wind comes down from the hills every evening.",
  "The baker opens his shop before the sun is up.",
  "Children walk to school along the road by the field.",
  "The clock in the square strikes the hour once more.",
  "Rain fell on the roofs of the town all afternoon.",
  "A small boat waits at the end of the wooden pier.",
  "The library keeps its doors open until late at night.",
  "Farmers bring their apples to the market on Fridays.",
  "The path through the forest is quiet in winter.",
  "An old man feeds the birds in the park each morning.",
  "The train to the city leaves at a quarter past nine.",
  "Snow covers the mountains for most of the year.",
  "The lamps along the street come on one by one.",
  "A dog sleeps in the shade beside the garden wall.",
  "The tea in the kitchen has gone cold again.",
];

/** Words for keys and word lists: this project's adjectives and nouns. */
const WORDS: readonly string[] = [...ADJECTIVES, ...NOUNS];

function key(rng: Rng): string {
  return `${rng.pick(ADJECTIVES)}-${rng.pick(NOUNS)}`;
}

function number7(rng: Rng): string {
  return String(rng.int(1_000_000, 9_999_999));
}

function uuid(rng: Rng): string {
  const hex = (n: number) => Array.from({ length: n }, () => rng.int(0, 15).toString(16)).join("");
  return `${hex(8)}-${hex(4)}-4${hex(3)}-${"89ab"[rng.int(0, 3)]}${hex(3)}-${hex(12)}`;
}

/** "a", "a and b", "a, b, and c" */
function listed(xs: string[]): string {
  return xs.length < 3 ? xs.join(" and ") : `${xs.slice(0, -1).join(", ")}, and ${xs.at(-1)}`;
}

/** One case at a haystack size: the prompt and what the answer should hold. */
interface Built {
  prompt: string;
  expected: string[];
}

/** A needle-in-a-haystack task's shape. */
interface NiahSpec {
  /** `repeat`: the first filler sentences over and over; `drawn`: random filler; `needles` */
  haystack: "repeat" | "drawn" | "needles";
  /** needle keys: words (`adjective-noun`) or UUIDs */
  keys: "words" | "uuids";
  /** needle values: 7-digit numbers or UUIDs */
  values: "numbers" | "uuids";
  /** keys written in the haystack (the asked ones included) */
  numKeys: number;
  /** values per key */
  numValues: number;
  /** keys asked */
  numQueries: number;
}

const NIAH: Record<string, NiahSpec> = {
  niah_single_1: spec("repeat", "words", "numbers", 1, 1, 1),
  niah_single_2: spec("drawn", "words", "numbers", 1, 1, 1),
  niah_single_3: spec("drawn", "words", "uuids", 1, 1, 1),
  niah_multikey_1: spec("drawn", "words", "numbers", 4, 1, 1),
  niah_multikey_2: spec("needles", "words", "numbers", 1, 1, 1),
  niah_multikey_3: spec("needles", "uuids", "uuids", 1, 1, 1),
  niah_multivalue: spec("drawn", "words", "numbers", 1, 4, 1),
  niah_multiquery: spec("drawn", "words", "numbers", 4, 1, 4),
};

function spec(
  haystack: NiahSpec["haystack"],
  keys: NiahSpec["keys"],
  values: NiahSpec["values"],
  numKeys: number,
  numValues: number,
  numQueries: number,
): NiahSpec {
  return { haystack, keys, values, numKeys, numValues, numQueries };
}

/**
 * A needle-in-a-haystack prompt with `size` haystack units, drawn from `seed`; the needles sit
 * at random depths.
 */
function niah(s: NiahSpec, size: number, seed: number): Built {
  const rng = new Rng(seed);
  const kind = s.values === "numbers" ? "number" : "code";
  const drawKey = () => s.keys === "words" ? key(rng) : uuid(rng);
  const drawValue = () => s.values === "numbers" ? number7(rng) : uuid(rng);
  const needle = (k: string, v: string) => `The secret ${kind} for ${k} is: ${v}.`;
  const keys: string[] = [];
  while (keys.length < s.numKeys) {
    const k = drawKey();
    if (!keys.includes(k)) keys.push(k);
  }
  const values = keys.map(() => Array.from({ length: s.numValues }, drawValue));
  const needles = rng.shuffle(keys.flatMap((k, i) => values[i]!.map((v) => needle(k, v))));
  const hay = Array.from({ length: size }, (_, i) => {
    if (s.haystack === "repeat") return FILLER[i % 5]!;
    if (s.haystack === "drawn") return rng.pick(FILLER);
    let k = drawKey();
    while (keys.includes(k)) k = drawKey();
    return needle(k, drawValue());
  });
  const text = scatter(hay, needles, rng);
  const asked = rng.shuffle(keys.map((_, i) => i)).slice(0, s.numQueries);
  const query = listed(asked.map((i) => keys[i]!));
  const many = s.numQueries * s.numValues > 1;
  const kinds = many ? `${kind}s` : kind;
  const sep = s.haystack === "needles" ? "\n" : " ";
  const prompt = `Some secret ${kind}s are hidden in the text below. Remember them: you will be ` +
    `asked for them afterwards.\n${text.join(sep)}\nWhat ${many ? "are all" : "is"} the secret ` +
    `${kinds} for ${query} in the text above? Answer: The secret ${kinds} for ${query} ` +
    `${many ? "are" : "is"}`;
  return { prompt, expected: asked.flatMap((i) => values[i]!) };
}

/** The haystack with `items` placed, in their order, before randomly drawn haystack units. */
function scatter(hay: string[], items: string[], rng: Rng): string[] {
  const at = items.map(() => rng.int(0, hay.length)).sort((a, b) => a - b);
  const text: string[] = [];
  let n = 0;
  for (let i = 0; i <= hay.length; i++) {
    while (n < items.length && at[n] === i) text.push(items[n++]!);
    if (i < hay.length) text.push(hay[i]!);
  }
  return text;
}

/** Variable tracking: one chain of 4 hops in a repeated block of filler sentences. */
function vt(size: number, seed: number): Built {
  const rng = new Rng(seed);
  const names: string[] = [];
  while (names.length < 5) {
    const v = Array.from({ length: 5 }, () => String.fromCharCode(65 + rng.int(0, 25))).join("");
    if (!names.includes(v)) names.push(v);
  }
  const value = String(rng.int(10000, 99999));
  const chain = names.map((v, i) =>
    i === 0 ? `VAR ${v} = ${value}.` : `VAR ${v} = VAR ${names[i - 1]}.`
  );
  const hay = Array.from({ length: size }, (_, i) => FILLER[i % 5]!);
  const text = scatter(hay, chain, rng);
  const prompt = `Follow the chain of variable assignments hidden in the text below.\n` +
    `${text.join(" ")}\nQuestion: Which variables are assigned the value ${value} in the text ` +
    `above? Answer: Following the assignments above, the ${names.length} variables assigned ` +
    `the value ${value} are:`;
  return { prompt, expected: names };
}

/**
 * Common-word extraction: `size` list entries, 10 common words repeated `common` times each and
 * the rest of the entries other words repeated `rare` times (6 and 1 below 4,096 tokens, 30 and
 * 3 from there, as RULER scales them).
 */
function cwe(size: number, seed: number, targetLength: number): Built {
  const rng = new Rng(seed);
  const [common, rare] = targetLength < 4096 ? [6, 1] : [30, 3];
  const pool = rng.shuffle([...WORDS]);
  const top = pool.slice(0, 10);
  const others = Math.min(pool.length - 10, Math.max(0, Math.floor((size - 10 * common) / rare)));
  const entries = rng.shuffle([
    ...top.flatMap((w) => Array<string>(common).fill(w)),
    ...pool.slice(10, 10 + others).flatMap((w) => Array<string>(rare).fill(w)),
  ]);
  const list = entries.map((w, i) => `${i + 1}. ${w}`).join(" ");
  const prompt = `Here is a numbered list of words. Some words occur much more often than the ` +
    `rest: find them.\n${list}\nQuestion: Which 10 words occur most often in the list above? ` +
    `Answer: The 10 words that occur most often in the list are:`;
  return { prompt, expected: top };
}

/**
 * Frequent-word extraction: about `size` coded words (6 random letters) over a vocabulary of
 * targetLength / 50, word k occurring ⌊size · k^−2 / ζ(2)⌋ times; the most frequent is "...".
 */
function fwe(size: number, seed: number, targetLength: number): Built {
  const rng = new Rng(seed);
  const vocab = new Set<string>();
  const V = Math.max(8, Math.floor(targetLength / 50));
  while (vocab.size < V) {
    vocab.add(Array.from({ length: 6 }, () => String.fromCharCode(97 + rng.int(0, 25))).join(""));
  }
  const words = [...vocab];
  words[0] = "...";
  const zeta2 = Math.PI ** 2 / 6;
  const text = rng.shuffle(
    words.flatMap((w, k) => Array<string>(Math.floor(size / (k + 1) ** 2 / zeta2)).fill(w)),
  );
  const prompt = `Below is a text of coded words. Count how often each coded word occurs and ` +
    `find the three that occur most often; ignore the dots '...'.\n${text.join(" ")}\n` +
    `Question: Which three coded words occur most often in the text above? Answer: The three ` +
    `coded words that occur most often are:`;
  return { prompt, expected: words.slice(1, 4) };
}

/** Most answer tokens per task (room for the expected strings and their separators). */
const MAX_NEW: Record<RulerTask, number> = {
  niah_single_1: 16,
  niah_single_2: 16,
  niah_single_3: 48,
  niah_multikey_1: 16,
  niah_multikey_2: 16,
  niah_multikey_3: 48,
  niah_multivalue: 64,
  niah_multiquery: 64,
  vt: 40,
  cwe: 96,
  fwe: 40,
};

/** The case of a task at a haystack size, from the case's own seed. */
function build(task: RulerTask, size: number, seed: number, targetLength: number): Built {
  if (task === "vt") return vt(size, seed);
  if (task === "cwe") return cwe(size, seed, targetLength);
  if (task === "fwe") return fwe(size, seed, targetLength);
  return niah(NIAH[task]!, size, seed);
}

/** Smallest haystack a case may have. */
const MIN_SIZE: Record<RulerTask, number> = {
  ...Object.fromEntries(RULER_TASKS.map((t) => [t, 1])) as Record<RulerTask, number>,
  cwe: 70, // the 10 common words 6 times each, and some others
  fwe: 40,
};

/** Largest haystack a case may have: cwe's list runs out of words. */
function maxSize(task: RulerTask, targetLength: number): number {
  if (task !== "cwe") return 1 << 24;
  const [common, rare] = targetLength < 4096 ? [6, 1] : [30, 3];
  return 10 * common + rare * (WORDS.length - 10);
}

/**
 * The largest haystack in [min, max] whose prompt fits `targetLength` tokens (exponential, then
 * binary search).
 * @throws {RangeError} when even the smallest does not fit
 */
function fit(
  fits: (size: number) => boolean,
  min: number,
  max: number,
  what: () => string,
): number {
  if (!fits(min)) throw new RangeError(what());
  let lo = min, hi = 2 * min;
  while (fits(Math.min(hi, max))) {
    if (hi >= max) return max;
    lo = hi;
    hi *= 2;
  }
  hi = Math.min(hi, max);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Options of {@link generateRulerCases}. */
export interface RulerOptions {
  /** The tasks; case i is task i mod tasks.length. */
  tasks: readonly RulerTask[];
  /** Number of cases in all. */
  count: number;
  /** The largest prompt length in tokens. */
  targetLength: number;
  /** Equal seeds give identical cases. */
  seed: number;
  /** The model's token count of a text. */
  countTokens: (text: string) => number;
}

/**
 * Generates RULER cases whose prompts fit a token budget: case i is task `tasks[i mod k]`, with
 * its own random material and as many haystack units as fit `targetLength`.
 *
 * @param opts tasks, count, length, seed, tokenizer
 * @returns `count` cases
 * @throws {RangeError} when the length cannot hold a task's smallest case (the message names the
 *   task and the tokens it needs), or on bad options
 * @example
 * ```ts
 * import { generateRulerCases } from "./ruler.ts";
 * const cases = generateRulerCases({
 *   tasks: ["niah_single_1", "vt"], count: 2, targetLength: 300, seed: 0,
 *   countTokens: (s) => Math.ceil(s.length / 4),
 * });
 * console.assert(cases[1]!.task === "vt" && cases[1]!.tokens <= 300);
 * ```
 */
export function generateRulerCases(opts: RulerOptions): RulerCase[] {
  const { tasks, count, targetLength, seed, countTokens } = opts;
  if (tasks.length === 0) throw new RangeError("generateRulerCases: no tasks");
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`generateRulerCases: count is ${count}; expected an integer ≥ 0`);
  }
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, i) => {
    const task = tasks[i % tasks.length]!;
    const caseSeed = rng.int(0, 0x7fffffff);
    const at = (size: number) => build(task, size, caseSeed, targetLength);
    const size = fit(
      (n) => countTokens(at(n).prompt) <= targetLength,
      MIN_SIZE[task],
      maxSize(task, targetLength),
      () =>
        `${task}: a prompt of ${targetLength} tokens is too short; the smallest case needs ` +
        `${countTokens(at(MIN_SIZE[task]).prompt)}`,
    );
    const { prompt, expected } = at(size);
    return {
      id: `${task}-n${targetLength}-s${seed}-${i}`,
      task,
      prompt,
      expected,
      maxNew: MAX_NEW[task],
      targetLength,
      tokens: countTokens(prompt),
    };
  });
}

/**
 * RULER's score of one answer: the share of the expected strings that occur in it, ignoring case
 * (RULER's `string_match_all`).
 *
 * @param answer the generated text
 * @param expected the strings the answer should hold
 * @returns a number in [0, 1]
 * @example
 * ```ts
 * import { scoreRuler } from "./ruler.ts";
 * console.assert(scoreRuler("They are ABC and xyz.", ["abc", "XYZ", "qq"]) === 2 / 3);
 * ```
 */
export function scoreRuler(answer: string, expected: readonly string[]): number {
  const a = answer.toLowerCase();
  return expected.filter((e) => a.includes(e.toLowerCase())).length / expected.length;
}

/** Per-task and overall RULER scores. */
export interface RulerSummary {
  /** RULER's average: the mean over tasks of each task's mean score (0 with no cases). */
  score: number;
  /** Cases scored. */
  n: number;
  /** Each task that has cases, in {@link RULER_TASKS} order. */
  byTask: { task: RulerTask; score: number; n: number }[];
}

/**
 * Summarises scored cases as RULER reports them.
 * @param results each case with its score
 * @returns the mean over tasks and each task's mean
 */
export function summarizeRuler(results: { task: RulerTask; score: number }[]): RulerSummary {
  const byTask = RULER_TASKS.flatMap((task) => {
    const mine = results.filter((r) => r.task === task);
    if (mine.length === 0) return [];
    return [{ task, score: mine.reduce((a, r) => a + r.score, 0) / mine.length, n: mine.length }];
  });
  const score = byTask.length === 0 ? 0 : byTask.reduce((a, t) => a + t.score, 0) / byTask.length;
  return { score, n: results.length, byTask };
}

/**
 * DuoAttention's training data (solver/duo.ts): a passkey prompt in the shape of
 * `niah_multiquery` with `keys` needles, every key asked, followed by the answer listing the
 * values; `answerStart` is where the answer begins in the text.
 *
 * @param size haystack sentences
 * @param keys needles, all asked
 * @param seed the sample's seed
 * @returns the text and the answer's offset in it
 */
export function passkeySample(
  size: number,
  keys: number,
  seed: number,
): { text: string; answerStart: number } {
  const s = niah({ ...NIAH.niah_multiquery!, numKeys: keys, numQueries: keys }, size, seed);
  return { text: `${s.prompt} ${s.expected.join(", ")}.`, answerStart: s.prompt.length };
}
