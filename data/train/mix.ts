/**
 * The training data mix for moa-tiny: next-token examples of exactly `T` positions drawn from
 * four kinds, by relative weight.
 *
 * - `brown`: a window of `T + 1` tokens of Brown corpus text (no BOS, like the perplexity
 *   benchmark's windows), weight 1 everywhere.
 * - `longeval`: `[BOS]`, a LongEval lines prompt in the exact DESIGN.md §5 format (keys from
 *   {@link TRAIN_WORDS} only), then the answer ` <VALUE>` and `"\n"`; EOS padding.
 * - `multiQuery`: the same, then further questions ({@link formatQuestion}) about other lines of
 *   the record, each answered ` <VALUE>\n`, as many as fit.
 * - With `answer: "echo"` both kinds answer by restating the asked line instead,
 *   ` line {key}: REGISTER_CONTENT is <VALUE>\n` (the benchmark scores the last integer, so this is
 *   as correct as ` <VALUE>`). The tokens before the value then equal those before it in the
 *   record line, so finding the value is matching a context the model has just written: the
 *   copying that `repeat` grows, rather than a join between the question's and the record's
 *   different wordings.
 * - `copy`: a Brown passage that starts at a paragraph, {@link COPY_INSTRUCTION}, the passage's
 *   first sentence again, and `"\n"`.
 * - `repeat`: `[BOS]`, then spans of random tokens each followed by itself again (span lengths
 *   uniform in [8, T/4]); only the second copies, after their first token, carry loss
 *   (`answerWeight`). Nothing but an
 *   induction head (find the earlier occurrence of the current token, copy what followed) can
 *   predict them, so this kind grows the copying circuit retrieval needs, early and cheaply.
 *
 * - `recall`: `[BOS]`, LongEval record lines (`line {key}: REGISTER_CONTENT is <VALUE>\n`, keys
 *   from {@link TRAIN_WORDS}) filling at most half the example, then the same lines again in
 *   fresh random orders until the example is full; only the values of the repeated lines carry
 *   answer loss (`valueWeight`). It is LongEval's retrieval with nothing else around it (no
 *   header, no question), a dozen lookups per example instead of one.
 *
 * Token layout: the prompt is tokenized the way the LongEval benchmark tokenizes it (one
 * `encode` of the whole prompt text after BOS); answers are appended as `encode(" <VALUE>")`
 * followed by `encode("\n")`, so the model learns to end an answer with the newline token that
 * stops greedy decoding. Each extra question of `multiQuery` is `encode(formatQuestion(key))`.
 *
 * Loss weights: `weights[t]` scales the loss of predicting `targets[t]`. Answer tokens (the
 * tokens of ` <VALUE>` and the `"\n"` after it; the repeated sentence and its `"\n"`) get
 * `answerWeight`, other tokens of a task example `contextWeight`, EOS padding 0.
 *
 * Speed: a LongEval prompt is assembled from cached token pieces (header, `line`, ` key`,
 * `: REGISTER_CONTENT is`, ` <value>`, newline, question head and tail) when, for the given
 * tokenizer, that assembly equals encoding the whole prompt (checked once on sample prompts at
 * construction; {@link MixStream.fastPath}). Otherwise every prompt is encoded whole.
 *
 * @module
 */

import { Rng } from "../../runtime/rng.ts";
import type { TextTokenizer } from "../../runtime/tokenizer.ts";
import {
  BROWN_DIR,
  type BrownPart,
  brownSplit,
  detokenizeBrown,
  readBrownDocuments,
} from "../brown.ts";
import { formatLine, formatQuestion, HEADER, MAX_VALUE, MIN_VALUE } from "../longeval/longeval.ts";
import { TRAIN_WORDS } from "../longeval/words.ts";
import { loadTrainKeySampler, type TrainKeySampler } from "../longeval/keys.ts";

/** The id of `<s>`, put before every task example. */
export const BOS_ID = 1;
/** The id of `</s>`, used as padding (with weight 0). */
export const EOS_ID = 2;

/** The text between a `copy` passage and the repeated sentence. */
export const COPY_INSTRUCTION = "\nRepeat the first sentence of the passage.\n";

/** First sentences shorter than this (in characters) are not used for `copy` examples. */
export const COPY_MIN_SENTENCE_CHARS = 20;
/** First sentences longer than this (in characters) are not used for `copy` examples. */
export const COPY_MAX_SENTENCE_CHARS = 400;

/** The kinds of training example. */
export type MixKind = "brown" | "longeval" | "multiQuery" | "copy" | "repeat" | "recall";

/** Every kind, in the order used for sampling. */
export const MIX_KINDS: readonly MixKind[] = [
  "brown",
  "longeval",
  "multiQuery",
  "copy",
  "repeat",
  "recall",
];

/** Token ids below this are special (`<unk>`, `<s>`, `</s>`) and never drawn for `repeat`. */
const FIRST_ORDINARY_ID = 3;
/** Shortest span of a `repeat` example. */
const REPEAT_MIN_SPAN = 8;

/** One next-token training example of exactly `T` positions. */
export interface Example {
  /** input ids, (T) */
  tokens: Int32Array;
  /** `targets[t]` is the token after `tokens[t]`, (T) */
  targets: Int32Array;
  /** how much the loss of predicting `targets[t]` counts; 0 = ignored (padding), (T) */
  weights: Float32Array;
  /** which kind of example this is */
  kind: MixKind;
  /** number of record lines (`longeval`, `multiQuery`); 0 for the other kinds */
  lines: number;
  /** number of questions answered (1 for `longeval`, ≥ 1 for `multiQuery`); 0 otherwise */
  questions: number;
  /** the position id of each input token, (T): `0..T-1`, or spread ({@link MixConfig.spread}) */
  positions: Int32Array;
}

/** The mix and its curriculum knobs. */
export interface MixConfig {
  /** positions per example */
  T: number;
  /** relative weights of the kinds (≥ 0, not all 0; `repeat` and `recall` default to 0) */
  kinds: {
    brown: number;
    longeval: number;
    multiQuery: number;
    copy: number;
    repeat?: number;
    recall?: number;
  };
  /**
   * `[min, max]` record lines of `longeval` and `multiQuery` examples, drawn uniformly; the
   * count is further capped so the example fits `T` (never below 1)
   */
  lines: [number, number];
  /** loss weight of prompt / context tokens of task examples, e.g. 0.1 */
  contextWeight: number;
  /**
   * `repeat` draws its tokens from the first `repeatVocab` ordinary ids (a small alphabet makes
   * each token recur often, so copying is learned sooner); default: the whole vocabulary
   */
  repeatVocab?: number;
  /** loss weight of answer tokens, e.g. 1 */
  answerWeight: number;
  /**
   * loss weight of the value (digits and closing `>` and newline) of a LongEval answer; default
   * `answerWeight`. The value's first digit is the retrieval itself, and with echoed answers it
   * is one target among a dozen easy ones, so a phase may weight it up.
   */
  valueWeight?: number;
  /**
   * How `longeval` and `multiQuery` questions are answered: `"value"` (default) with
   * ` <VALUE>`; `"echo"` by restating the asked record line, ` line {key}: REGISTER_CONTENT is
   * <VALUE>` (see the module doc)
   */
  answer?: AnswerStyle;
  /**
   * where keys of `longeval`, `multiQuery` and `recall` come from: `"train-words"` (default:
   * adjective–noun pairs of the training word list) or `"varied"` ({@link TrainKeySampler}: needs
   * a sampler, see {@link MixStream.create})
   */
  keys?: KeyStyle;
  /**
   * When set, a share ({@link spreadShare}) of examples get position ids spread over
   * `[0, spread)`: the example is cut into 2–4 chunks and each later chunk's positions jump
   * ahead (as PoSE trains long positions on short examples; the first chunk, with BOS, starts
   * at 0). The tokens are unchanged; only the distances RoPE sees grow.
   */
  spread?: number;
  /** share of examples whose positions are spread; default 0.5 */
  spreadShare?: number;
}

/** How LongEval questions are answered in training examples ({@link MixConfig.answer}). */
export type AnswerStyle = "value" | "echo";

/** Where training keys come from ({@link MixConfig.keys}). */
export type KeyStyle = "train-words" | "varied";

/** A flat batch: B examples of T positions, row after row. */
export interface Batch {
  /** (B, T) */
  tokens: Int32Array;
  /** (B, T) */
  targets: Int32Array;
  /** (B, T) */
  weights: Float32Array;
  /** the kind of each row, (B) */
  kinds: MixKind[];
  /** position ids, (B, T) */
  positions: Int32Array;
}

/** One Brown paragraph, as {@link detokenizeBrown} renders it. */
export interface BrownParagraph {
  /** the paragraph's text */
  text: string;
  /** its first sentence (a prefix of `text`), or null for a headline */
  firstSentence: string | null;
}

/** A start for a `copy` example: a paragraph start in {@link BrownCorpus.tokens}. */
export interface CopyPassage {
  /** index of the paragraph's first token in the corpus tokens */
  start: number;
  /** the paragraph's first sentence */
  sentence: string;
  /** `encode(sentence)` */
  sentenceTokens: Int32Array;
}

/** Brown text, tokenized once. */
export interface BrownCorpus {
  /** the tokens of all paragraphs joined by `"\n\n"` */
  tokens: Int32Array;
  /** paragraph starts usable for `copy` examples, in text order */
  passages: CopyPassage[];
}

/** True when every token of a tagged line carries a headline tag (`-hl`), as brown.ts decides. */
function isHeadlineLine(line: string): boolean {
  const tokens = line.split(/\s+/);
  return tokens.length > 0 && tokens.every((t) => {
    const slash = t.lastIndexOf("/");
    return slash >= 0 && t.slice(slash + 1).endsWith("-hl");
  });
}

/**
 * Splits one tagged Brown corpus file into paragraphs with their first sentences. Paragraphs
 * are grouped exactly as {@link detokenizeBrown} groups them (blank lines separate paragraphs; a
 * headline line is a paragraph of its own), so the paragraph texts joined by `"\n\n"` equal
 * `detokenizeBrown(tagged)`. A tagged line is one sentence, so a paragraph's first sentence is
 * the detokenised first line.
 *
 * @param tagged the contents of a corpus file (`word/tag` tokens, one sentence per line)
 * @returns the non-empty paragraphs in order
 * @example
 * ```ts
 * import { brownParagraphs } from "./mix.ts";
 * const p = brownParagraphs("He/pps ran/vbd ./.\nShe/pps sat/vbd ./.\n");
 * console.assert(p[0]!.text === "He ran. She sat." && p[0]!.firstSentence === "He ran.");
 * ```
 */
export function brownParagraphs(tagged: string): BrownParagraph[] {
  const out: BrownParagraph[] = [];
  let group: string[] = [];
  const flush = (headline: boolean) => {
    if (group.length === 0) return;
    const text = detokenizeBrown(group.join("\n"));
    if (text !== "") {
      let firstSentence: string | null = null;
      if (!headline) {
        const first = detokenizeBrown(group[0]!);
        if (first !== "" && text.startsWith(first)) firstSentence = first;
      }
      out.push({ text, firstSentence });
    }
    group = [];
  };
  for (const raw of tagged.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "") {
      flush(false);
    } else if (isHeadlineLine(line)) {
      flush(false);
      group = [line];
      flush(true);
    } else {
      group.push(line);
    }
  }
  flush(false);
  return out;
}

/** Options of {@link readBrownParagraphs} and {@link loadBrownCorpus}. */
export interface BrownCorpusOptions {
  /**
   * which part of the fixed split
   * @default "train"
   */
  part?: BrownPart;
  /**
   * use only the part's first `documents` documents (for quick tests)
   * @default all
   */
  documents?: number;
}

/**
 * Reads the Brown corpus paragraphs of one part of the split, in document order. Joined by
 * `"\n\n"` they give exactly `brownText(part)` (checked per document while reading).
 *
 * @param options see {@link BrownCorpusOptions}
 * @returns the paragraphs
 * @throws {InputError} when the corpus package is missing (as `readBrownDocuments`)
 * @example
 * ```ts
 * import { readBrownParagraphs } from "./mix.ts";
 * const paragraphs = await readBrownParagraphs({ documents: 1 });
 * console.assert(paragraphs[0]!.text.startsWith("The Fulton County Grand Jury"));
 * ```
 */
export async function readBrownParagraphs(
  options: BrownCorpusOptions = {},
): Promise<BrownParagraph[]> {
  const part = options.part ?? "train";
  let docs = brownSplit(await readBrownDocuments(), part);
  if (options.documents !== undefined) {
    if (!Number.isInteger(options.documents) || options.documents < 1) {
      throw new RangeError(
        `readBrownParagraphs: documents must be an integer >= 1, got ${options.documents}`,
      );
    }
    docs = docs.slice(0, options.documents);
  }
  const perDoc = await Promise.all(docs.map(async (d) => {
    const paragraphs = brownParagraphs(await Deno.readTextFile(new URL(d.id, BROWN_DIR)));
    if (paragraphs.map((p) => p.text).join("\n\n") !== d.text) {
      throw new Error(`readBrownParagraphs: paragraphs of ${d.id} do not rebuild its text`);
    }
    return paragraphs;
  }));
  return perDoc.flat();
}

/**
 * Tokenizes paragraphs into a {@link BrownCorpus}. The token stream is `encode(p)` of each
 * paragraph with two `encode("\n")` between paragraphs, which for byte-level BPE equals encoding
 * the joined text at once (its pre-tokenizer splits `".\n\nThe"` into `"."`, `"\n"`, `"\n"`,
 * `"The"`) and tells where each paragraph starts.
 *
 * @param tokenizer the model's tokenizer
 * @param paragraphs the paragraphs, e.g. from {@link readBrownParagraphs}
 * @returns the corpus; paragraphs whose first sentence has
 *   {@link COPY_MIN_SENTENCE_CHARS}..{@link COPY_MAX_SENTENCE_CHARS} characters become passages
 * @example
 * ```ts
 * import { buildBrownCorpus } from "./mix.ts";
 * import { byteLevelTokenizerJson, tokenizerFromJson } from "../../runtime/tokenizer.ts";
 * const tok = tokenizerFromJson(byteLevelTokenizerJson([]));
 * const c = buildBrownCorpus(tok, [{ text: "Hi there, friend. Bye.", firstSentence: "Hi there, friend." }]);
 * console.assert(c.tokens.length === 22 && c.passages.length === 0); // sentence too short
 * ```
 */
export function buildBrownCorpus(
  tokenizer: TextTokenizer,
  paragraphs: readonly BrownParagraph[],
): BrownCorpus {
  const nl = tokenizer.encode("\n");
  const pieces: number[][] = [];
  const passages: CopyPassage[] = [];
  let length = 0;
  paragraphs.forEach((p, i) => {
    if (i > 0) {
      pieces.push(nl, nl);
      length += 2 * nl.length;
    }
    const s = p.firstSentence;
    if (
      s !== null && s.length >= COPY_MIN_SENTENCE_CHARS && s.length <= COPY_MAX_SENTENCE_CHARS
    ) {
      passages.push({ start: length, sentence: s, sentenceTokens: toInt32(tokenizer.encode(s)) });
    }
    const ids = tokenizer.encode(p.text);
    pieces.push(ids);
    length += ids.length;
  });
  const tokens = new Int32Array(length);
  let at = 0;
  for (const piece of pieces) {
    tokens.set(piece, at);
    at += piece.length;
  }
  return { tokens, passages };
}

const corpusCache = new WeakMap<TextTokenizer, Map<string, Promise<BrownCorpus>>>();

/**
 * Reads and tokenizes Brown paragraphs ({@link readBrownParagraphs}, {@link buildBrownCorpus}),
 * once per tokenizer and options: later calls return the cached corpus. The whole training part
 * is about 5.4 M characters (several seconds to tokenize).
 *
 * @param tokenizer the model's tokenizer
 * @param options see {@link BrownCorpusOptions}
 * @returns the corpus
 * @throws {InputError} when the corpus package is missing
 * @example
 * ```ts
 * import { loadBrownCorpus } from "./mix.ts";
 * import { byteLevelTokenizerJson, tokenizerFromJson } from "../../runtime/tokenizer.ts";
 * const tok = tokenizerFromJson(byteLevelTokenizerJson([]));
 * const corpus = await loadBrownCorpus(tok, { documents: 2 });
 * console.assert(corpus.passages.length > 10);
 * ```
 */
export function loadBrownCorpus(
  tokenizer: TextTokenizer,
  options: BrownCorpusOptions = {},
): Promise<BrownCorpus> {
  let byOptions = corpusCache.get(tokenizer);
  if (byOptions === undefined) {
    byOptions = new Map();
    corpusCache.set(tokenizer, byOptions);
  }
  const key = `${options.part ?? "train"}:${options.documents ?? "all"}`;
  let cached = byOptions.get(key);
  if (cached === undefined) {
    const map = byOptions;
    cached = readBrownParagraphs(options).then((ps) => buildBrownCorpus(tokenizer, ps));
    cached.catch(() => map.delete(key));
    map.set(key, cached);
  }
  return cached;
}

function toInt32(ids: ArrayLike<number>): Int32Array {
  return Int32Array.from(ids as ArrayLike<number>);
}

function concat(parts: readonly ArrayLike<number>[]): Int32Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sameIds(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One record line's content. */
interface RecordLine {
  key: string;
  value: number;
}

/**
 * Tokens of LongEval prompts and answers for one tokenizer, from cached pieces when that is
 * exact (see the module doc), else by encoding whole prompts.
 */
class LongEvalTokens {
  readonly fast: boolean;
  readonly #tok: TextTokenizer;
  readonly nl: Int32Array;
  readonly #header: Int32Array; // encode(HEADER minus its last "\n")
  readonly #lineHead: Int32Array; // encode("line")
  readonly #lineMid: Int32Array; // encode(": REGISTER_CONTENT is")
  readonly #qHead: Int32Array; // encode("\nNow the record is over. ... in line")
  readonly #qTail: Int32Array; // encode("? I need the number. ")
  readonly #spaceLine: Int32Array; // encode(" line"): how an echoed answer starts
  readonly #keys = new Map<string, Int32Array>();
  readonly #values = new Map<number, Int32Array>();
  readonly #bareValues = new Map<number, Int32Array>();

  constructor(tok: TextTokenizer) {
    this.#tok = tok;
    const enc = (s: string) => toInt32(tok.encode(s));
    this.nl = enc("\n");
    const probe = "\u0001";
    const q = formatQuestion(probe);
    const qAt = q.indexOf(` ${probe}`);
    const line = formatLine(probe, 7);
    const lAt = line.indexOf(` ${probe}`);
    const lEnd = line.lastIndexOf(" <7>\n");
    const qHead = q.slice(0, Math.max(0, qAt));
    const qTail = q.slice(qAt + 2);
    const lineHead = line.slice(0, Math.max(0, lAt));
    const lineMid = line.slice(lAt + 2, Math.max(lAt + 2, lEnd));
    this.#header = enc(HEADER.slice(0, -1));
    this.#qHead = enc(qHead);
    this.#qTail = enc(qTail);
    this.#lineHead = enc(lineHead);
    this.#lineMid = enc(lineMid);
    this.#spaceLine = enc(` ${lineHead}`);
    this.fast = qAt >= 0 && lAt >= 0 && lEnd >= 0 && HEADER.endsWith("\n") &&
      this.#verify(qHead, qTail, lineHead, lineMid);
  }

  /** Checks the piece assembly against whole-prompt encoding on sample prompts. */
  #verify(qHead: string, qTail: string, lineHead: string, lineMid: string): boolean {
    const { adjectives, nouns } = TRAIN_WORDS;
    const values = [1, 7, 42, 50000, 31415, 9, 1000, 27, 5, 80808, 123];
    // keys of every style the mix draws: words, capitals, digits first and last, three parts
    const odd = ["Xr7Q-pl4Zk", "7abc-Def", "RIVER", "river42-BEEPS", "a-b-c9"];
    const lines: RecordLine[] = values.map((value, i) => ({
      key: i < odd.length
        ? odd[i]!
        : `${adjectives[(i * 37) % adjectives.length]}-${nouns[(i * 53) % nouns.length]}`,
      value,
    }));
    for (const { key, value } of lines) {
      if (formatLine(key, value) !== `${lineHead} ${key}${lineMid} <${value}>\n`) return false;
      if (formatQuestion(key) !== `${qHead} ${key}${qTail}`) return false;
      if (!sameIds(this.#questionPieces(key), this.#tok.encode(formatQuestion(key)))) {
        return false;
      }
    }
    for (let n = 1; n <= lines.length; n += 3) {
      const sample = lines.slice(0, n);
      const asked = sample[n - 1]!.key;
      if (
        !sameIds(this.#promptPieces(sample, asked), this.#tok.encode(promptText(sample, asked)))
      ) {
        return false;
      }
    }
    return true;
  }

  /** `encode(" " + key)`, cached. */
  key(key: string): Int32Array {
    let ids = this.#keys.get(key);
    if (ids === undefined) {
      ids = toInt32(this.#tok.encode(` ${key}`));
      this.#keys.set(key, ids);
    }
    return ids;
  }

  /** `encode(" <value>")`, cached: the answer without its newline. */
  value(value: number): Int32Array {
    let ids = this.#values.get(value);
    if (ids === undefined) {
      ids = toInt32(this.#tok.encode(` <${value}>`));
      this.#values.set(value, ids);
    }
    return ids;
  }

  /** Tokens of a record line by pieces (exact when `fast`, an estimate otherwise). */
  lineLength(line: RecordLine): number {
    return this.#lineHead.length + this.key(line.key).length + this.#lineMid.length +
      this.value(line.value).length + this.nl.length;
  }

  /** Tokens of the header by pieces. */
  headerLength(): number {
    return this.#header.length + this.nl.length;
  }

  /** Tokens of a question (exact when `fast`, an estimate otherwise). */
  questionLength(key: string): number {
    return this.#qHead.length + this.key(key).length + this.#qTail.length;
  }

  /** `encode("<value>")`, cached: a value answer after the question's closing space. */
  bareValue(value: number): Int32Array {
    let ids = this.#bareValues.get(value);
    if (ids === undefined) {
      ids = toInt32(this.#tok.encode(`<${value}>`));
      this.#bareValues.set(value, ids);
    }
    return ids;
  }

  /** Tokens of an answer with its newline. */
  answerLength(line: RecordLine, style: AnswerStyle): number {
    return style === "echo"
      ? this.#spaceLine.length + this.lineLength(line) - this.#lineHead.length
      : this.bareValue(line.value).length + this.nl.length;
  }

  /**
   * An answer with its newline, after the question's closing space: `<value>\n`, or the asked
   * line restated, ` line {key}: REGISTER_CONTENT is <value>\n`. The echo starts with the token
   * ` line` (space included), which the question has just before the key (`… in line {key}?`)
   * and no record line has (they start with `line`): copying the key is then induction from the
   * question, never from a record line. The doubled space this leaves in the text does not
   * matter to the score (the last integer).
   */
  answer(line: RecordLine, style: AnswerStyle): Int32Array {
    return concat(this.answerParts(line, style));
  }

  /** {@link answer} as `[restated line before the value (empty unless echo), value + newline]`. */
  answerParts(line: RecordLine, style: AnswerStyle): [Int32Array, Int32Array] {
    return style === "echo"
      ? [
        concat([this.#spaceLine, this.key(line.key), this.#lineMid]),
        concat([this.value(line.value), this.nl]),
      ]
      : [new Int32Array(0), concat([this.bareValue(line.value), this.nl])];
  }

  /** A record line as `[line head, key and ": REGISTER_CONTENT is", " <value>" and newline]`. */
  lineParts(line: RecordLine): [Int32Array, Int32Array] {
    return [
      concat([this.#lineHead, this.key(line.key), this.#lineMid]),
      concat([this.value(line.value), this.nl]),
    ];
  }

  #questionPieces(key: string): Int32Array {
    return concat([this.#qHead, this.key(key), this.#qTail]);
  }

  #promptPieces(lines: readonly RecordLine[], askedKey: string): Int32Array {
    const parts: Int32Array[] = [this.#header, this.nl];
    for (const l of lines) {
      parts.push(this.#lineHead, this.key(l.key), this.#lineMid, this.value(l.value), this.nl);
    }
    parts.push(this.#qHead, this.key(askedKey), this.#qTail);
    return concat(parts);
  }

  /** `encode(HEADER + lines + formatQuestion(askedKey))`. */
  prompt(lines: readonly RecordLine[], askedKey: string): Int32Array {
    return this.fast
      ? this.#promptPieces(lines, askedKey)
      : toInt32(this.#tok.encode(promptText(lines, askedKey)));
  }

  /** `encode(formatQuestion(key))`. */
  question(key: string): Int32Array {
    return this.fast ? this.#questionPieces(key) : toInt32(this.#tok.encode(formatQuestion(key)));
  }
}

function promptText(lines: readonly RecordLine[], askedKey: string): string {
  return HEADER + lines.map((l) => formatLine(l.key, l.value)).join("") + formatQuestion(askedKey);
}

/** Fills one sequence of T + 1 tokens and the weight of predicting each. */
class SequenceBuilder {
  readonly seq: Int32Array;
  readonly w: Float32Array;
  length = 0;

  constructor(size: number) {
    this.seq = new Int32Array(size).fill(EOS_ID);
    this.w = new Float32Array(size);
  }

  get room(): number {
    return this.seq.length - this.length;
  }

  push(ids: ArrayLike<number>, weight: number): void {
    if (ids.length > this.room) {
      throw new Error(`SequenceBuilder: ${ids.length} tokens do not fit in ${this.room}`);
    }
    this.seq.set(ids, this.length);
    this.w.fill(weight, this.length, this.length + ids.length);
    this.length += ids.length;
  }

  finish(kind: MixKind, lines: number, questions: number): Example {
    const T = this.seq.length - 1;
    return {
      tokens: this.seq.slice(0, T),
      targets: this.seq.slice(1),
      weights: this.w.slice(1),
      kind,
      lines,
      questions,
      positions: Int32Array.from({ length: T }, (_, t) => t),
    };
  }
}

function checkConfig(c: MixConfig, hasCorpus: boolean, hasSampler: boolean): void {
  const bad = (field: string, value: unknown, expected: string) =>
    new RangeError(`MixConfig.${field}: expected ${expected}, got ${JSON.stringify(value)}`);
  if (!Number.isInteger(c.T) || c.T < 2) throw bad("T", c.T, "an integer >= 2");
  if (typeof c.kinds !== "object" || c.kinds === null) {
    throw bad("kinds", c.kinds, "an object {brown, longeval, multiQuery, copy}");
  }
  let total = 0;
  for (const k of MIX_KINDS) {
    const w = c.kinds[k] ?? (k === "repeat" || k === "recall" ? 0 : undefined);
    if (typeof w !== "number" || !Number.isFinite(w) || w < 0) {
      throw bad(`kinds.${k}`, w, "a finite number >= 0");
    }
    total += w;
  }
  if (total <= 0) throw bad("kinds", c.kinds, "at least one weight > 0");
  for (const k of ["brown", "copy"] as const) {
    if (c.kinds[k] > 0 && !hasCorpus) {
      throw new RangeError(
        `MixConfig.kinds.${k}: ${c.kinds[k]} needs a Brown corpus; pass one to MixStream ` +
          "(loadBrownCorpus) or use MixStream.create",
      );
    }
  }
  const l = c.lines;
  if (
    !Array.isArray(l) || l.length !== 2 || !Number.isInteger(l[0]) || !Number.isInteger(l[1]) ||
    l[0] < 1 || l[1] < l[0]
  ) {
    throw bad("lines", l, "[min, max] with integers 1 <= min <= max");
  }
  if (
    c.repeatVocab !== undefined && !(Number.isInteger(c.repeatVocab) && c.repeatVocab >= 2)
  ) {
    throw bad("repeatVocab", c.repeatVocab, "an integer >= 2");
  }
  if (c.answer !== undefined && c.answer !== "value" && c.answer !== "echo") {
    throw bad("answer", c.answer, '"value" or "echo"');
  }
  if (c.keys !== undefined && c.keys !== "train-words" && c.keys !== "varied") {
    throw bad("keys", c.keys, '"train-words" or "varied"');
  }
  if (c.keys === "varied" && !hasSampler) {
    throw new RangeError(
      'MixConfig.keys: "varied" needs a TrainKeySampler; pass one to MixStream ' +
        "(loadTrainKeySampler) or use MixStream.create",
    );
  }
  if (c.spread !== undefined && !(Number.isInteger(c.spread) && c.spread >= c.T)) {
    throw bad("spread", c.spread, `an integer >= T (${c.T})`);
  }
  if (c.spreadShare !== undefined && !(c.spreadShare >= 0 && c.spreadShare <= 1)) {
    throw bad("spreadShare", c.spreadShare, "a number in [0, 1]");
  }
  for (const k of ["contextWeight", "answerWeight", "valueWeight"] as const) {
    if (c[k] === undefined) continue;
    if (typeof c[k] !== "number" || !Number.isFinite(c[k]) || c[k] < 0) {
      throw bad(k, c[k], "a finite number >= 0");
    }
  }
}

function copyConfig(c: MixConfig): MixConfig {
  return { ...c, kinds: { ...c.kinds }, lines: [c.lines[0], c.lines[1]] };
}

/**
 * A deterministic stream of training examples: equal tokenizer, config history, seed and corpus
 * give equal examples.
 */
export class MixStream {
  readonly #tok: TextTokenizer;
  readonly #corpus: BrownCorpus | null;
  readonly #keys: TrainKeySampler | null;
  readonly #rng: Rng;
  readonly #le: LongEvalTokens;
  readonly #instruction: Int32Array;
  #config: MixConfig;
  #eligible: CopyPassage[] = [];
  #eligibleT = -1;

  /**
   * @param tokenizer the model's tokenizer
   * @param config the mix (copied; change it with {@link MixStream.setConfig})
   * @param seed seed of the stream's {@link Rng}
   * @param corpus tokenized Brown text; needed when `brown` or `copy` has weight > 0
   * @param keys the varied key sampler; needed when `keys` is `"varied"`
   * @throws {RangeError} on a bad config, naming the field
   */
  constructor(
    tokenizer: TextTokenizer,
    config: MixConfig,
    seed: number,
    corpus: BrownCorpus | null = null,
    keys: TrainKeySampler | null = null,
  ) {
    checkConfig(config, corpus !== null, keys !== null);
    this.#tok = tokenizer;
    this.#corpus = corpus;
    this.#keys = keys;
    this.#config = copyConfig(config);
    this.#rng = new Rng(seed);
    this.#le = new LongEvalTokens(tokenizer);
    this.#instruction = toInt32(tokenizer.encode(COPY_INSTRUCTION));
  }

  /**
   * A stream over the Brown training corpus, loaded with {@link loadBrownCorpus} (cached).
   *
   * @param tokenizer the model's tokenizer
   * @param config the mix
   * @param seed the stream's seed
   * @param options which Brown text to load
   * @returns the stream
   * @example
   * ```ts
   * import { MixStream } from "./mix.ts";
   * import { byteLevelTokenizerJson, tokenizerFromJson } from "../../runtime/tokenizer.ts";
   * const tok = tokenizerFromJson(byteLevelTokenizerJson([]));
   * const stream = await MixStream.create(tok, {
   *   T: 1024, kinds: { brown: 1, longeval: 2, multiQuery: 1, copy: 0.5 }, lines: [2, 8],
   *   contextWeight: 0.1, answerWeight: 1,
   * }, 0, { documents: 2 });
   * const batch = stream.nextBatch(4);
   * console.assert(batch.tokens.length === 4 * 1024);
   * ```
   */
  static async create(
    tokenizer: TextTokenizer,
    config: MixConfig,
    seed: number,
    options: BrownCorpusOptions = {},
  ): Promise<MixStream> {
    const keys = config.keys === "varied" ? await loadTrainKeySampler() : null;
    return new MixStream(tokenizer, config, seed, await loadBrownCorpus(tokenizer, options), keys);
  }

  /** Whether LongEval prompts are assembled from cached token pieces (see the module doc). */
  get fastPath(): boolean {
    return this.#le.fast;
  }

  /** A copy of the current config. */
  get config(): MixConfig {
    return copyConfig(this.#config);
  }

  /**
   * Changes the config between draws (the curriculum: `T`, `lines`, kind weights, …).
   *
   * @param partial the fields to replace; `kinds` and `lines` are replaced whole
   * @throws {RangeError} on a bad resulting config (the stream keeps its old config)
   */
  setConfig(partial: Partial<MixConfig>): void {
    const next = copyConfig({ ...this.#config, ...partial });
    checkConfig(next, this.#corpus !== null, this.#keys !== null);
    this.#config = next;
  }

  /**
   * Draws the next example: a kind by weight, then an example of that kind.
   *
   * @returns an example of exactly `T` positions
   * @throws {RangeError} when `T` is too small for the drawn kind
   */
  next(): Example {
    const ex = this.#draw();
    const { spread, spreadShare } = this.#config;
    if (spread !== undefined && this.#rng.next() < (spreadShare ?? 0.5)) {
      ex.positions = spreadPositions(ex.positions.length, spread, this.#rng);
    }
    return ex;
  }

  #draw(): Example {
    const { kinds } = this.#config;
    const weight = (k: MixKind) => kinds[k] ?? 0;
    let total = 0;
    for (const k of MIX_KINDS) total += weight(k);
    let r = this.#rng.next() * total;
    let kind: MixKind = "brown";
    for (const k of MIX_KINDS) {
      if (weight(k) <= 0) continue;
      kind = k;
      r -= weight(k);
      if (r < 0) break;
    }
    switch (kind) {
      case "brown":
        return this.#brown();
      case "longeval":
        return this.#longEval(false);
      case "multiQuery":
        return this.#longEval(true);
      case "copy":
        return this.#copy();
      case "repeat":
        return this.#repeat();
      case "recall":
        return this.#recall();
    }
  }

  /**
   * Draws B examples into flat arrays, row b at `[b*T, (b+1)*T)`.
   *
   * @param B number of examples
   * @returns the batch
   */
  nextBatch(B: number): Batch {
    if (!Number.isInteger(B) || B < 1) {
      throw new RangeError(`MixStream.nextBatch: B must be an integer >= 1, got ${B}`);
    }
    const T = this.#config.T;
    const batch: Batch = {
      tokens: new Int32Array(B * T),
      targets: new Int32Array(B * T),
      weights: new Float32Array(B * T),
      kinds: [],
      positions: new Int32Array(B * T),
    };
    for (let b = 0; b < B; b++) {
      const ex = this.next();
      batch.tokens.set(ex.tokens, b * T);
      batch.targets.set(ex.targets, b * T);
      batch.weights.set(ex.weights, b * T);
      batch.positions.set(ex.positions, b * T);
      batch.kinds.push(ex.kind);
    }
    return batch;
  }

  #brown(): Example {
    const T = this.#config.T;
    const tokens = this.#corpus!.tokens;
    if (tokens.length < T + 1) {
      throw new RangeError(
        `MixConfig.T: ${T} needs a Brown window of ${T + 1} tokens, but the corpus has ` +
          `${tokens.length}`,
      );
    }
    const start = this.#rng.int(0, tokens.length - T - 1);
    const b = new SequenceBuilder(T + 1);
    b.push(tokens.subarray(start, start + T + 1), 1);
    return b.finish("brown", 0, 0);
  }

  /** The most distinct keys a record can have. */
  get #maxKeys(): number {
    return this.#config.keys === "varied"
      ? Infinity
      : TRAIN_WORDS.adjectives.length * TRAIN_WORDS.nouns.length;
  }

  #drawKey(used: Set<string>): string {
    if (this.#config.keys === "varied") return this.#keys!.draw(this.#rng, used);
    const { adjectives, nouns } = TRAIN_WORDS;
    for (;;) {
      const key = `${this.#rng.pick(adjectives)}-${this.#rng.pick(nouns)}`;
      if (!used.has(key)) {
        used.add(key);
        return key;
      }
    }
  }

  #longEval(multi: boolean): Example {
    const { T, lines: [lo, hi], contextWeight, answerWeight } = this.#config;
    const valueWeight = this.#config.valueWeight ?? answerWeight;
    const style = this.#config.answer ?? "value";
    const pushAnswer = (line: RecordLine) => {
      const [lead, value] = le.answerParts(line, style);
      b.push(lead, answerWeight);
      b.push(value, valueWeight);
    };
    const size = T + 1;
    const le = this.#le;
    const want = Math.min(this.#rng.int(lo, hi), this.#maxKeys);
    const fixed = 1 + le.headerLength();

    // Draw lines while they could still fit; keep the largest count whose prompt plus the
    // longest question and answer among them fits (so any asked line fits).
    const used = new Set<string>();
    const record: RecordLine[] = [];
    let sum = fixed;
    let worstQA = 0;
    let n = 0;
    while (record.length < want && (record.length === 0 || sum < size)) {
      const line = { key: this.#drawKey(used), value: this.#rng.int(MIN_VALUE, MAX_VALUE) };
      record.push(line);
      sum += le.lineLength(line);
      worstQA = Math.max(worstQA, le.questionLength(line.key) + le.answerLength(line, style));
      if (sum + worstQA <= size) n = record.length;
    }
    if (n === 0) {
      const first = record[0]!;
      const need = fixed + le.lineLength(first) + le.questionLength(first.key) +
        le.answerLength(first, style) - 1;
      throw new RangeError(
        `MixConfig.T: ${T} is too small for a LongEval example with one line ` +
          `(needs T >= ${need})`,
      );
    }
    record.length = n;
    const asked = record[this.#rng.int(0, n - 1)]!;
    const others = multi ? this.#rng.shuffle(record.filter((l) => l !== asked)) : [];

    let prompt = le.prompt(record, asked.key);
    // Only when pieces are not exact: drop lines (not the asked one) until the example fits.
    while (1 + prompt.length + le.answerLength(asked, style) > size) {
      if (record.length === 1) {
        throw new RangeError(
          `MixConfig.T: ${T} is too small for a LongEval example with one line`,
        );
      }
      record.splice(record[record.length - 1] === asked ? record.length - 2 : record.length - 1, 1);
      prompt = le.prompt(record, asked.key);
    }

    const b = new SequenceBuilder(size);
    b.push([BOS_ID], 0);
    b.push(prompt, contextWeight);
    pushAnswer(asked);
    let questions = 1;
    const kept = new Set(record);
    for (const line of others) {
      if (!kept.has(line)) continue; // dropped above
      const q = le.question(line.key);
      if (q.length + le.answerLength(line, style) > b.room) break;
      b.push(q, contextWeight);
      pushAnswer(line);
      questions++;
    }
    return b.finish(multi ? "multiQuery" : "longeval", record.length, questions);
  }

  /** Passages whose sentence fits twice (in the passage and as the answer) in `T`. */
  #eligiblePassages(T: number): CopyPassage[] {
    if (this.#eligibleT !== T) {
      const spare = T - this.#instruction.length - this.#le.nl.length;
      this.#eligible = this.#corpus!.passages.filter((p) => 2 * p.sentenceTokens.length <= spare);
      this.#eligibleT = T;
    }
    return this.#eligible;
  }

  #repeat(): Example {
    const { T, answerWeight } = this.#config;
    const V = Math.min(
      this.#tok.vocabSize,
      FIRST_ORDINARY_ID + (this.#config.repeatVocab ?? this.#tok.vocabSize),
    );
    if (T < 2 * REPEAT_MIN_SPAN + 1) {
      throw new RangeError(
        `MixConfig.T: ${T} is too small for a repeat example (needs ≥ ${2 * REPEAT_MIN_SPAN + 1})`,
      );
    }
    const b = new SequenceBuilder(T + 1);
    b.push([BOS_ID], 0);
    const maxSpan = Math.max(REPEAT_MIN_SPAN, Math.floor(T / 4));
    while (b.room >= 2 * REPEAT_MIN_SPAN) {
      const n = Math.min(this.#rng.int(REPEAT_MIN_SPAN, maxSpan), Math.floor(b.room / 2));
      const span = new Int32Array(n);
      for (let i = 0; i < n; i++) span[i] = this.#rng.int(FIRST_ORDINARY_ID, V - 1);
      b.push(span, 0);
      b.push(span.subarray(0, 1), 0); // what starts the copy cannot be predicted
      b.push(span.subarray(1), answerWeight);
    }
    return b.finish("repeat", 0, 0);
  }

  #recall(): Example {
    const { T, lines: [lo, hi], contextWeight, answerWeight } = this.#config;
    const valueWeight = this.#config.valueWeight ?? answerWeight;
    const want = Math.min(this.#rng.int(lo, hi), this.#maxKeys);
    const b = new SequenceBuilder(T + 1);
    b.push([BOS_ID], 0);
    // the record: up to `want` lines in at most half of the example, so each can be recalled
    const used = new Set<string>();
    const record: [Int32Array, Int32Array][] = [];
    let recordLength = 0;
    while (record.length < want) {
      const line = { key: this.#drawKey(used), value: this.#rng.int(MIN_VALUE, MAX_VALUE) };
      const parts = this.#le.lineParts(line);
      const n = parts[0].length + parts[1].length;
      if (recordLength + n > Math.floor(T / 2)) break;
      record.push(parts);
      recordLength += n;
    }
    if (record.length === 0) {
      throw new RangeError(`MixConfig.T: ${T} is too small for a recall example`);
    }
    for (const [head, value] of record) b.push(concat([head, value]), contextWeight);
    // the recalls: the record's lines again, in fresh random orders, while they fit
    let recalls = 0;
    for (;;) {
      for (const [head, value] of this.#rng.shuffle(record)) {
        if (head.length + value.length > b.room) {
          return b.finish("recall", record.length, recalls);
        }
        b.push(head, contextWeight);
        b.push(value, valueWeight);
        recalls++;
      }
    }
  }

  #copy(): Example {
    const { T, contextWeight, answerWeight } = this.#config;
    const eligible = this.#eligiblePassages(T);
    if (eligible.length === 0) {
      throw new RangeError(
        `MixConfig.T: ${T} is too small for a copy example: no Brown first sentence fits twice`,
      );
    }
    const p = this.#rng.pick(eligible);
    const tokens = this.#corpus!.tokens;
    const answer = p.sentenceTokens.length + this.#le.nl.length;
    const passageLength = T - this.#instruction.length - answer; // T + 1 - BOS - ...
    const b = new SequenceBuilder(T + 1);
    b.push([BOS_ID], 0);
    b.push(
      tokens.subarray(p.start, Math.min(tokens.length, p.start + passageLength)),
      contextWeight,
    );
    b.push(this.#instruction, contextWeight);
    b.push(p.sentenceTokens, answerWeight);
    b.push(this.#le.nl, answerWeight);
    return b.finish("copy", 0, 0);
  }
}

/**
 * Position ids for an example of `T` tokens spread over `[0, spread)`: the example is cut at
 * 1–3 random points into chunks, and the positions jump ahead between chunks by a total skip
 * drawn uniformly from `[0, spread - T]`. The first chunk starts at 0; within a chunk positions
 * rise by 1, so local distances are those of contiguous text.
 *
 * @param T tokens in the example (≥ 2)
 * @param spread positions are below this (≥ T)
 * @param rng the random stream
 * @returns (T) increasing position ids, the first 0, the last below `spread`
 * @example
 * ```ts
 * import { spreadPositions } from "./mix.ts";
 * import { Rng } from "../../runtime/rng.ts";
 * const p = spreadPositions(8, 100, new Rng(1));
 * console.assert(p[0] === 0 && p[7]! < 100);
 * ```
 */
export function spreadPositions(T: number, spread: number, rng: Rng): Int32Array {
  const cuts = new Set<number>();
  const want = Math.min(T - 1, rng.int(1, 3));
  while (cuts.size < want) cuts.add(rng.int(1, T - 1));
  const at = [...cuts].sort((a, b) => a - b);
  const skip = rng.int(0, spread - T);
  const shares = at.map(() => rng.next());
  const sum = shares.reduce((a, b) => a + b, 0) || 1;
  // integer gaps that add up to `skip` exactly
  const gaps = shares.map((x) => Math.floor((skip * x) / sum));
  gaps[gaps.length - 1]! += skip - gaps.reduce((a, b) => a + b, 0);
  const out = new Int32Array(T);
  let offset = 0, c = 0;
  for (let t = 0; t < T; t++) {
    if (c < at.length && t === at[c]) offset += gaps[c++]!;
    out[t] = t + offset;
  }
  return out;
}
