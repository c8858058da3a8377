/**
 * Byte-level BPE training: learns the merges of moa's own tokenizers, written out by
 * {@linkcode byteLevelTokenizerJson}.
 *
 * The trainer splits text exactly as that tokenizer.json's pre-tokenizer does when
 * `@huggingface/tokenizers` runs it:
 *
 * 1. the special tokens `<unk>`, `<s>`, `</s>` are cut out (they become special ids, not BPE words);
 * 2. every `\p{N}` character is isolated (Split, behavior "Isolated");
 * 3. each remaining piece is split by the GPT-2 ByteLevel pattern
 *    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (JavaScript
 *    semantics of `\s`, as the package uses it);
 * 4. each word's UTF-8 bytes become byte-level characters ({@linkcode byteToUnicode}).
 *
 * It then counts word types and repeatedly merges the most frequent adjacent pair of symbols,
 * updating pair counts incrementally over the word types that hold the merged pair. Ties go to the
 * lexicographically smallest pair (left token, then right token, by UTF-16 code units), so
 * training is deterministic. Words that come from a `\p{N}` character (digits) take part in no
 * merge, so every digit stays a token of its own and no token mixes a digit with anything else.
 * A pair whose concatenation is already a token is never merged: it would add no vocabulary
 * entry, and a second route to the same token would let the tokenizer's rank-order encoding
 * diverge from the segmentation the trainer learned. (A safeguard: it has not fired on the Brown
 * corpus nor on 200,000 small random corpora.) Since every token then has one creating merge,
 * encoding any training word with the learned merges (lowest rank first) reproduces the trainer's
 * final segmentation.
 *
 * @module
 */

import { byteLevelTokenizerJson, byteToUnicode, SPECIAL_TOKENS } from "../../runtime/tokenizer.ts";
import { Rng } from "../../runtime/rng.ts";
import { brownText } from "../brown.ts";
import { formatLine, formatQuestion, HEADER, MAX_VALUE, MIN_VALUE } from "../longeval/longeval.ts";
import { TRAIN_WORDS, type WordLists } from "../longeval/words.ts";

/**
 * The special token strings. None is a prefix of another, so leftmost alternation matches what the
 * package's longest-match splitter finds.
 */
const SPECIAL_RE = new RegExp(
  SPECIAL_TOKENS.map((t) => t.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|"),
  "g",
);
/** Step 2 of the pre-tokenizer: one numeric character. */
const NUMERIC_RE = /\p{N}/gu;
/** Step 3: the GPT-2 ByteLevel split pattern, as `@huggingface/tokenizers` compiles it. */
const GPT2_RE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const BYTE_CHARS: readonly string[] = byteToUnicode();
const ENCODER = new TextEncoder();

/** What a pre-tokenized piece is. */
type PieceKind = "special" | "numeric" | "text";

/**
 * Calls `emit` for each piece of `text` in order, before byte-level mapping: special tokens,
 * single numeric characters, and GPT-2 pattern matches of the text between them.
 */
function forEachPiece(text: string, emit: (piece: string, kind: PieceKind) => void): void {
  const plain = (s: string) => {
    for (const m of s.matchAll(GPT2_RE)) emit(m[0], "text");
  };
  const unspecial = (s: string) => {
    let at = 0;
    for (const m of s.matchAll(NUMERIC_RE)) {
      if (m.index > at) plain(s.slice(at, m.index));
      emit(m[0], "numeric");
      at = m.index + m[0].length;
    }
    if (at < s.length) plain(s.slice(at));
  };
  let at = 0;
  for (const m of text.matchAll(SPECIAL_RE)) {
    if (m.index > at) unspecial(text.slice(at, m.index));
    emit(m[0], "special");
    at = m.index + m[0].length;
  }
  if (at < text.length) unspecial(text.slice(at));
}

/** The byte-level form of a piece: its UTF-8 bytes as {@linkcode byteToUnicode} characters. */
function toByteLevel(piece: string): string {
  let out = "";
  for (const b of ENCODER.encode(piece)) out += BYTE_CHARS[b]!;
  return out;
}

/**
 * Splits text into the byte-level words that BPE sees, exactly as the pre-tokenizer of
 * {@linkcode byteLevelTokenizerJson} does. Special-token strings (`<unk>`, `<s>`, `</s>`) are left
 * out: the tokenizer maps them to special ids without BPE.
 *
 * @param text any string
 * @returns the words, in order, each a string of byte-level characters
 * @example
 * ```ts
 * import { preTokenize } from "./bpe.ts";
 * console.log(preTokenize("it's 42 cats")); // ["it", "'s", "Ġ", "4", "2", "Ġcats"]
 * ```
 */
export function preTokenize(text: string): string[] {
  const out: string[] = [];
  forEachPiece(text, (piece, kind) => {
    if (kind !== "special") out.push(toByteLevel(piece));
  });
  return out;
}

/** Options of {@linkcode trainBpe}. */
export interface TrainBpeOptions {
  /**
   * the number of vocabulary entries wanted: 3 special tokens + 256 bytes + one per merge;
   * an integer from 259 to 2^20
   */
  vocabSize: number;
  /**
   * a pair seen fewer times than this (counting each word type by its frequency) is never
   * merged; training stops when the most frequent pair is rarer
   * @default 2
   */
  minFrequency?: number;
}

/** The result of {@linkcode trainBpeDetailed}. */
export interface BpeTraining {
  /** the merges, in merge order (pairs of byte-level token strings) */
  merges: [string, string][];
  /** each word type that took part in training (byte-level) → its tokens after the last merge */
  segmentation: Map<string, string[]>;
  /** each word type (byte-level), numeric ones included → how often it occurs */
  wordCounts: Map<string, number>;
}

/** Pair keys pack two symbol ids: `left * PAIR_SHIFT + right`. */
const PAIR_SHIFT = 2 ** 20;
const NUM_BYTES = 256;
const NUM_BASE = SPECIAL_TOKENS.length + NUM_BYTES;

/** A heap entry: a pair and its count when pushed (stale when the count changed since). */
interface PairEntry {
  key: number;
  count: number;
}

/** A binary max-heap over pair entries; `before(x, y)` says x comes out first. */
class PairHeap {
  readonly #items: PairEntry[] = [];
  readonly #before: (x: PairEntry, y: PairEntry) => boolean;

  constructor(before: (x: PairEntry, y: PairEntry) => boolean) {
    this.#before = before;
  }

  get size(): number {
    return this.#items.length;
  }

  push(e: PairEntry): void {
    const a = this.#items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): PairEntry | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < a.length && this.#before(a[l]!, a[m]!)) m = l;
      if (r < a.length && this.#before(a[r]!, a[m]!)) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
    return top;
  }
}

/** Counts the byte-level word types of `texts`, and which of them are numeric. */
function countWords(
  texts: readonly string[],
): { counts: Map<string, number>; numeric: Set<string> } {
  const raw = new Map<string, number>();
  const rawNumeric = new Set<string>();
  for (const text of texts) {
    forEachPiece(text, (piece, kind) => {
      if (kind === "special") return;
      raw.set(piece, (raw.get(piece) ?? 0) + 1);
      if (kind === "numeric") rawNumeric.add(piece);
    });
  }
  // Distinct raw pieces can share a byte form only through lone surrogates (both become U+FFFD).
  const counts = new Map<string, number>();
  const numeric = new Set<string>();
  for (const [piece, c] of raw) {
    const w = toByteLevel(piece);
    counts.set(w, (counts.get(w) ?? 0) + c);
    if (rawNumeric.has(piece)) numeric.add(w);
  }
  return { counts, numeric };
}

/**
 * Trains byte-level BPE merges and also returns the trainer's own view of the corpus, for checks.
 * See {@linkcode trainBpe}.
 *
 * @param texts the corpus: one string or several (words never span two strings)
 * @param opts the vocabulary size and minimum pair frequency
 * @returns the merges, each word type's final segmentation, and the word counts
 * @throws {RangeError} when `vocabSize` is not an integer in 259..2^20 or `minFrequency` is not
 *   a positive integer
 * @example
 * ```ts
 * import { trainBpeDetailed } from "./bpe.ts";
 * const t = trainBpeDetailed("low lower lowest", { vocabSize: 262, minFrequency: 1 });
 * console.log(t.merges); // [["l", "o"], ["lo", "w"], ["low", "e"]]
 * console.log(t.segmentation.get("Ġlower")); // ["Ġ", "lowe", "r"]
 * ```
 */
export function trainBpeDetailed(texts: string[] | string, opts: TrainBpeOptions): BpeTraining {
  const { vocabSize } = opts;
  const minFrequency = opts.minFrequency ?? 2;
  if (!Number.isInteger(vocabSize) || vocabSize < NUM_BASE || vocabSize > PAIR_SHIFT) {
    throw new RangeError(
      `trainBpe: vocabSize must be an integer from ${NUM_BASE} to ${PAIR_SHIFT}, got ${vocabSize}`,
    );
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new RangeError(`trainBpe: minFrequency must be an integer >= 1, got ${minFrequency}`);
  }
  const { counts: wordCounts, numeric } = countWords(typeof texts === "string" ? [texts] : texts);

  // Symbols: ids 0..255 are the bytes (as byte-level characters), then one id per merge.
  const tokens: string[] = [...BYTE_CHARS];
  const idOf = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const byteId = new Map<string, number>(BYTE_CHARS.map((ch, b) => [ch, b]));

  // Word types that can merge: not numeric, at least two symbols.
  const typeNames: string[] = [];
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [w, c] of wordCounts) {
    if (numeric.has(w) || w.length < 2) continue;
    typeNames.push(w);
    words.push(Array.from(w, (ch) => byteId.get(ch)!));
    freq.push(c);
  }

  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  for (let w = 0; w < words.length; w++) {
    const s = words[w]!, c = freq[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const k = s[i]! * PAIR_SHIFT + s[i + 1]!;
      pairCount.set(k, (pairCount.get(k) ?? 0) + c);
      let set = where.get(k);
      if (set === undefined) where.set(k, set = new Set());
      set.add(w);
    }
  }

  const before = (x: PairEntry, y: PairEntry): boolean => {
    if (x.count !== y.count) return x.count > y.count;
    const xa = tokens[Math.floor(x.key / PAIR_SHIFT)]!,
      ya = tokens[Math.floor(y.key / PAIR_SHIFT)]!;
    if (xa !== ya) return xa < ya;
    return tokens[x.key % PAIR_SHIFT]! < tokens[y.key % PAIR_SHIFT]!;
  };
  const heap = new PairHeap(before);
  for (const [key, count] of pairCount) heap.push({ key, count });

  const merges: [string, string][] = [];
  const wanted = vocabSize - NUM_BASE;
  const skipped = new Set<number>();
  while (merges.length < wanted) {
    const top = heap.pop();
    if (top === undefined) break;
    const cur = pairCount.get(top.key) ?? 0;
    if (cur !== top.count) {
      // Stale. A larger current count has its own, newer entry; a smaller one goes back in.
      if (cur > 0 && cur < top.count) heap.push({ key: top.key, count: cur });
      continue;
    }
    if (skipped.has(top.key)) continue;
    if (cur < minFrequency) break;
    const a = Math.floor(top.key / PAIR_SHIFT), b = top.key % PAIR_SHIFT;
    const merged = tokens[a]! + tokens[b]!;
    if (idOf.has(merged)) {
      skipped.add(top.key);
      continue;
    }
    const c = tokens.length;
    tokens.push(merged);
    idOf.set(merged, c);
    merges.push([tokens[a]!, tokens[b]!]);

    // Re-segment every word holding (a, b); pair counts change by the difference.
    const startCount = new Map<number, number>();
    const bump = (k: number, d: number) => {
      const old = pairCount.get(k) ?? 0;
      if (!startCount.has(k)) startCount.set(k, old);
      const now = old + d;
      if (now === 0) pairCount.delete(k);
      else pairCount.set(k, now);
    };
    for (const w of where.get(top.key) ?? []) {
      const s = words[w]!;
      let found = false;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue; // an earlier merge in this word removed the pair
      const n = freq[w]!;
      const t: number[] = [];
      for (let i = 0; i < s.length;) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          t.push(c);
          i += 2;
        } else {
          t.push(s[i]!);
          i++;
        }
      }
      for (let i = 0; i + 1 < s.length; i++) bump(s[i]! * PAIR_SHIFT + s[i + 1]!, -n);
      for (let i = 0; i + 1 < t.length; i++) {
        const k = t[i]! * PAIR_SHIFT + t[i + 1]!;
        bump(k, n);
        if (t[i] === c || t[i + 1] === c) {
          let set = where.get(k);
          if (set === undefined) where.set(k, set = new Set());
          set.add(w);
        }
      }
      words[w] = t;
    }
    where.delete(top.key);
    for (const [k, start] of startCount) {
      const now = pairCount.get(k) ?? 0;
      if (now > start) heap.push({ key: k, count: now });
    }
  }

  const segmentation = new Map<string, string[]>();
  for (let w = 0; w < words.length; w++) {
    segmentation.set(typeNames[w]!, words[w]!.map((id) => tokens[id]!));
  }
  return { merges, segmentation, wordCounts };
}

/**
 * Trains byte-level BPE merges on a corpus.
 *
 * The text is pre-tokenized exactly as {@linkcode byteLevelTokenizerJson}'s tokenizer does (see
 * the module doc), word types are counted, and the most frequent adjacent pair is merged until
 * the vocabulary reaches `vocabSize` entries (3 special + 256 bytes + one per merge). Fewer
 * merges come back when the corpus runs out: no pair left, or the most frequent one is seen fewer
 * than `minFrequency` times. Ties go to the lexicographically smallest pair. Deterministic. Pair
 * counts are updated incrementally over the word types holding the merged pair.
 *
 * @param texts the corpus: one string or several (words never span two strings)
 * @param opts the vocabulary size and minimum pair frequency
 * @returns the merges in merge order, at most `vocabSize - 259`, each adding a distinct token
 * @throws {RangeError} on a bad `vocabSize` or `minFrequency`
 * @example
 * ```ts
 * import { trainBpe } from "./bpe.ts";
 * import { byteLevelTokenizerJson, tokenizerFromJson } from "../../runtime/tokenizer.ts";
 * const merges = trainBpe("the cat and the hat", { vocabSize: 265 });
 * // Only 3 pairs occur twice or more: the corpus runs out before 265 entries.
 * console.log(merges); // [["a", "t"], ["h", "e"], ["t", "he"]]
 * const tok = tokenizerFromJson(byteLevelTokenizerJson(merges));
 * console.log(tok.vocabSize, tok.encode("the hat").length); // 262 4 ("the", "Ġ", "h", "at")
 * ```
 */
export function trainBpe(texts: string[] | string, opts: TrainBpeOptions): [string, string][] {
  return trainBpeDetailed(texts, opts).merges;
}

/**
 * Encodes text with merges the classic way (GPT-2's reference `bpe()`): pre-tokenize, then in
 * each word repeatedly merge every occurrence of the adjacent pair whose merge ranks first. This
 * is an implementation independent of `@huggingface/tokenizers`, for checking it.
 *
 * @param text any string
 * @param merges pairs of byte-level token strings, in rank order
 * @returns the token strings (special tokens as themselves)
 * @example
 * ```ts
 * import { encodeWithMerges } from "./bpe.ts";
 * console.log(encodeWithMerges("the 12", [["t", "h"], ["th", "e"]])); // ["the", "Ġ", "1", "2"]
 * ```
 */
export function encodeWithMerges(text: string, merges: readonly [string, string][]): string[] {
  const rank = new Map<string, number>();
  merges.forEach(([a, b], i) => {
    const k = `${a} ${b}`; // byte-level characters never include a space
    if (!rank.has(k)) rank.set(k, i);
  });
  const out: string[] = [];
  forEachPiece(text, (piece, kind) => {
    if (kind === "special") {
      out.push(piece);
      return;
    }
    let word = Array.from(toByteLevel(piece));
    for (;;) {
      let best = Infinity, bestA = "", bestB = "";
      for (let i = 0; i + 1 < word.length; i++) {
        const r = rank.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < best) [best, bestA, bestB] = [r, word[i]!, word[i + 1]!];
      }
      if (best === Infinity) break;
      const next: string[] = [];
      for (let i = 0; i < word.length;) {
        if (i + 1 < word.length && word[i] === bestA && word[i + 1] === bestB) {
          next.push(bestA + bestB);
          i += 2;
        } else {
          next.push(word[i]!);
          i++;
        }
      }
      word = next;
    }
    out.push(...word);
  });
  return out;
}

/** Options of {@linkcode longEvalSample}. */
export interface LongEvalSampleOptions {
  /**
   * number of prompts; each is the header, its lines and a question
   * @default 8
   */
  prompts?: number;
  /**
   * lines per prompt
   * @default 50
   */
  linesPerPrompt?: number;
  /**
   * the words keys are made from
   * @default TRAIN_WORDS
   */
  words?: WordLists;
  /**
   * seed of the {@linkcode Rng} that picks keys and values
   * @default 0
   */
  seed?: number;
  /**
   * leave the keys out (`line: REGISTER_CONTENT is <…>`, `in line? …`): the template's
   * pre-tokenizer pieces are the same as with keys, so it merges as compactly, while no key
   * word gains a token from the sample
   * @default false
   */
  noKeys?: boolean;
}

/**
 * LongEval-format text for tokenizer training: `prompts` prompts of the header, `linesPerPrompt`
 * lines `line {adjective}-{noun}: REGISTER_CONTENT is <{value}>` and the closing question, keys
 * drawn from the training words only.
 *
 * @param opts see {@linkcode LongEvalSampleOptions}
 * @returns the prompts joined by `"\n\n"`
 * @throws {RangeError} when a word list is empty
 * @example
 * ```ts
 * import { longEvalSample } from "./bpe.ts";
 * console.log(longEvalSample({ prompts: 1, linesPerPrompt: 2 }).split("\n").length); // 6
 * ```
 */
export function longEvalSample(opts: LongEvalSampleOptions = {}): string {
  const prompts = opts.prompts ?? 8, perPrompt = opts.linesPerPrompt ?? 50;
  const words = opts.words ?? TRAIN_WORDS;
  const rng = new Rng(opts.seed ?? 0);
  const key = () => `${rng.pick(words.adjectives)}-${rng.pick(words.nouns)}`;
  const out: string[] = [];
  for (let p = 0; p < prompts; p++) {
    let text = HEADER;
    for (let i = 0; i < perPrompt; i++) {
      const line = formatLine(key(), rng.int(MIN_VALUE, MAX_VALUE));
      text += opts.noKeys ? line.replace(/^line [^:]+:/, "line:") : line;
    }
    const question = formatQuestion(key());
    out.push(text + (opts.noKeys ? question.replace(/ line [^?]+\?/, " line?") : question));
  }
  return out.join("\n\n");
}

/** Options of {@linkcode buildMoaTokenizer}. */
export interface MoaTokenizerOptions {
  /**
   * number of vocabulary entries
   * @default 4096
   */
  vocabSize?: number;
  /**
   * `"train-words"`: the LongEval sample's keys are adjective–noun pairs of the training word
   * list (recipes up to v5: those words become whole tokens); `"none"`: the sample has no keys
   * ({@linkcode LongEvalSampleOptions.noKeys}), so every key tokenizes as Brown text does
   * @default "train-words"
   */
  keys?: "train-words" | "none";
}

/**
 * Builds the tokenizer.json of moa-tiny: byte-level BPE trained on the Brown corpus's training
 * part plus {@linkcode longEvalSample} (8 prompts of 50 lines, seed 0), so that the LongEval
 * template (`REGISTER_CONTENT`, the header, the question) tokenizes compactly. With the default
 * `keys: "train-words"` the sample's keys come from the training word list (those words then
 * tokenize whole, other keys in pieces); with `keys: "none"` the sample has no keys, so keys of
 * every source tokenize alike. Minimum pair frequency 2.
 *
 * @param opts see {@linkcode MoaTokenizerOptions}
 * @returns the tokenizer.json object ({@linkcode byteLevelTokenizerJson})
 * @throws {InputError} when the Brown corpus cannot be read ({@linkcode brownText})
 * @example
 * ```ts ignore
 * import { buildMoaTokenizer } from "./bpe.ts";
 * import { tokenizerFromJson } from "../../runtime/tokenizer.ts";
 * const tok = tokenizerFromJson(await buildMoaTokenizer());
 * console.log(tok.vocabSize); // 4096
 * ```
 */
export async function buildMoaTokenizer(
  opts: MoaTokenizerOptions = {},
): Promise<Record<string, unknown>> {
  const vocabSize = opts.vocabSize ?? 4096;
  const brown = await brownText("train");
  const sample = longEvalSample({ noKeys: opts.keys === "none" });
  return byteLevelTokenizerJson(trainBpe([brown, sample], { vocabSize }));
}
