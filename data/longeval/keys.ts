/**
 * Where LongEval line keys come from: one varied source for training, and three evaluation
 * sources that share no key part with it, so that an evaluation measures the lookup rather than
 * keys a model has memorised.
 *
 * A key is parts joined by `-` (`torpid-kid`, LongChat's form, has two). Every part is tied to
 * one side by {@link isEvalPart}, a hash of the part in lower case: training draws only parts on
 * the training side, the made-up and mixed evaluation sources only parts on the evaluation
 * side, and the English evaluation source uses the word lists of `words.ts`, which training
 * never uses. So no evaluation key shares a part with any training key, whatever the casing.
 *
 * Sources:
 * - `train` ({@link TrainKeySampler}): parts from every Brown word type (lower case, sometimes
 *   capitalised or upper case, sometimes with digits appended; 75% of parts), made-up
 *   pronounceable words (15%), and random letter-and-digit strings (10%); one to three parts,
 *   mostly two. A share of each record's
 *   keys are "near misses" of another key in the record (one part replaced, or one character
 *   changed), so a lookup must match the whole key rather than a part of it.
 * - `words`: adjective–noun pairs from the English lists of `words.ts`.
 * - `madeup`: pairs of made-up pronounceable words from syllables that training's made-up words
 *   do not use.
 * - `mixed`: pairs of strings of letters and digits in mixed case (`Qx7b-M3ka`).
 *
 * @module
 */

import type { Rng } from "../../runtime/rng.ts";
import { ADJECTIVES, NOUNS } from "./words.ts";
import { brownText } from "../brown.ts";

/** The evaluation key sources (see the module doc). */
export type EvalKeySource = "words" | "madeup" | "mixed";

/** Every evaluation key source, in report order. */
export const EVAL_KEY_SOURCES: readonly EvalKeySource[] = ["words", "madeup", "mixed"];

/** FNV-1a of a string's UTF-16 code units, as an unsigned 32-bit integer. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Whether a key part belongs to the evaluation side: one part in five, by a hash of its lower
 * case, so that casing never moves a part across sides.
 *
 * @param part one `-`-separated piece of a key
 * @returns true on the evaluation side
 * @example
 * ```ts
 * import { isEvalPart } from "./keys.ts";
 * console.assert(isEvalPart("Kid") === isEvalPart("kid"));
 * ```
 */
export function isEvalPart(part: string): boolean {
  return fnv1a(part.toLowerCase()) % 5 === 0;
}

const ENGLISH = new Set([...ADJECTIVES, ...NOUNS]);

/** Whether training may use a part: on the training side and not an English list word. */
export function isTrainPart(part: string): boolean {
  return !isEvalPart(part) && !ENGLISH.has(part.toLowerCase());
}

// made-up words: training and evaluation build them from different syllable inventories
const TRAIN_SYLLABLES = {
  onsets: ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr"],
  vowels: ["a", "e", "i", "o", "u", "ai", "ou"],
  codas: ["", "", "n", "r", "s", "l", "k", "m", "st"],
};
const EVAL_SYLLABLES = {
  onsets: ["c", "h", "j", "w", "y", "ch", "sh", "th", "pl", "cr", "fl", "tr", "qu", "sn"],
  vowels: ["a", "e", "i", "o", "u", "ea", "oo", "ie"],
  codas: ["", "", "x", "nd", "rt", "ck", "sh", "p", "ng"],
};

function madeUpWord(rng: Rng, inv: typeof TRAIN_SYLLABLES): string {
  const syllables = rng.next() < 0.7 ? 2 : 3;
  let w = "";
  for (let s = 0; s < syllables; s++) {
    w += rng.pick(inv.onsets) + rng.pick(inv.vowels) +
      (s === syllables - 1 || rng.next() < 0.3 ? rng.pick(inv.codas) : "");
  }
  return w;
}

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const DIGITS = "0123456789";

/** A string of 3–6 letters and digits in mixed case, with at least one digit and one letter. */
function mixedString(rng: Rng): string {
  for (;;) {
    const n = rng.int(3, 6);
    let s = "";
    for (let i = 0; i < n; i++) {
      if (rng.next() < 0.3) s += rng.pick([...DIGITS]);
      else {
        const c = rng.pick([...LOWER]);
        s += rng.next() < 0.4 ? c.toUpperCase() : c;
      }
    }
    if (/\d/.test(s) && /[a-zA-Z]/.test(s)) return s;
  }
}

/** Draws one part on a side until the side accepts it. */
function drawPart(draw: () => string, accept: (p: string) => boolean): string {
  for (;;) {
    const p = draw();
    if (accept(p)) return p;
  }
}

/**
 * One key from an evaluation source.
 *
 * @param source which source (see the module doc)
 * @param rng the random stream
 * @returns a key of two parts joined by `-`
 * @example
 * ```ts
 * import { evalKey } from "./keys.ts";
 * import { Rng } from "../../runtime/rng.ts";
 * console.log(evalKey("mixed", new Rng(1))); // e.g. "Qx7b-M3ka"
 * ```
 */
export function evalKey(source: EvalKeySource, rng: Rng): string {
  switch (source) {
    case "words":
      return `${rng.pick(ADJECTIVES)}-${rng.pick(NOUNS)}`;
    case "madeup": {
      const part = () => drawPart(() => madeUpWord(rng, EVAL_SYLLABLES), isEvalPart);
      return `${part()}-${part()}`;
    }
    case "mixed": {
      const part = () => drawPart(() => mixedString(rng), isEvalPart);
      return `${part()}-${part()}`;
    }
  }
}

/**
 * Draws distinct keys for one record from the varied training source. Build it once per pool
 * of Brown word types ({@link TrainKeySampler.fromWords}) and call {@link draw} per key with the
 * record's set of used keys.
 */
export class TrainKeySampler {
  /** the Brown word types training may use as parts (lower case) */
  readonly words: readonly string[];

  /** @param words candidate words; those {@link isTrainPart} rejects are dropped */
  constructor(words: Iterable<string>) {
    const keep = new Set<string>();
    for (const w of words) {
      const lw = w.toLowerCase();
      if (/^[a-z]{2,14}$/.test(lw) && isTrainPart(lw)) keep.add(lw);
    }
    this.words = [...keep].sort();
    if (this.words.length === 0) throw new RangeError("TrainKeySampler: no usable words");
  }

  /** One training part. */
  part(rng: Rng): string {
    const r = rng.next();
    if (r < 0.6) return rng.pick(this.words);
    if (r < 0.68) {
      const w = rng.pick(this.words);
      return rng.next() < 0.6 ? w[0]!.toUpperCase() + w.slice(1) : w.toUpperCase();
    }
    if (r < 0.75) {
      return drawPart(() => rng.pick(this.words) + String(rng.int(0, 99)), isTrainPart);
    }
    if (r < 0.9) return drawPart(() => madeUpWord(rng, TRAIN_SYLLABLES), isTrainPart);
    return drawPart(() => mixedString(rng), isTrainPart);
  }

  /** A fresh key of one to three parts (mostly two). */
  fresh(rng: Rng): string {
    const r = rng.next();
    const parts = r < 0.08 ? 1 : r < 0.95 ? 2 : 3;
    return Array.from({ length: parts }, () => this.part(rng)).join("-");
  }

  /**
   * A key close to `base`: one part replaced by a fresh one, or one character of one part
   * changed (a letter's case, a digit, or a letter).
   */
  nearMiss(base: string, rng: Rng): string {
    const parts = base.split("-");
    const i = rng.int(0, parts.length - 1);
    if (rng.next() < 0.6 || parts[i]!.length < 2) parts[i] = this.part(rng);
    else {
      const p = parts[i]!;
      const j = rng.int(0, p.length - 1);
      const c = p[j]!;
      const repl = /\d/.test(c)
        ? String((Number(c) + rng.int(1, 9)) % 10)
        : rng.next() < 0.5 && c.toLowerCase() !== c.toUpperCase()
        ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())
        : rng.pick([...LOWER]);
      const next = p.slice(0, j) + repl + p.slice(j + 1);
      parts[i] = isTrainPart(next) ? next : this.part(rng);
    }
    return parts.join("-");
  }

  /**
   * A key not yet in `used` (which gains it): a near miss of an earlier key of the record with
   * probability `nearShare`, otherwise fresh.
   *
   * @param rng the random stream
   * @param used the record's keys so far, in order; gains the new key
   * @param nearShare probability of a near miss when the record has keys
   * @returns the new key
   */
  draw(rng: Rng, used: Set<string>, nearShare = 0.25): string {
    for (;;) {
      const key = used.size > 0 && rng.next() < nearShare
        ? this.nearMiss(rng.pick([...used]), rng)
        : this.fresh(rng);
      if (!used.has(key)) {
        used.add(key);
        return key;
      }
    }
  }
}

let brownSampler: Promise<TrainKeySampler> | null = null;

/**
 * The training key sampler over every word type of the Brown training documents (loaded once
 * per process).
 *
 * @returns the sampler
 * @throws {InputError} when the Brown corpus cannot be read
 */
export function loadTrainKeySampler(): Promise<TrainKeySampler> {
  if (!brownSampler) {
    brownSampler = brownText("train").then((text) =>
      new TrainKeySampler(text.match(/[A-Za-z]+/g) ?? [])
    );
    brownSampler.catch(() => (brownSampler = null));
  }
  return brownSampler;
}
