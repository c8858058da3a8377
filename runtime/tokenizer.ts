/**
 * Tokenizers: any Hugging Face `tokenizer.json` through `@huggingface/tokenizers`, and a writer
 * for the byte-level BPE files that moa builds for its own models.
 *
 * @module
 */
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { InputError } from "./errors.ts";

/** Text ↔ token ids. */
export interface TextTokenizer {
  /** Token ids of `text`, without special tokens (callers add BOS themselves). */
  encode(text: string): number[];
  /** Text of `ids`, special tokens dropped. */
  decode(ids: ArrayLike<number>): string;
  /** Number of entries in the vocabulary, added tokens included. */
  readonly vocabSize: number;
  /** The id of a token string, or null. */
  tokenId(token: string): number | null;
}

/**
 * Reads `dir/tokenizer.json` (and `dir/tokenizer_config.json` when present).
 * @param dir a Hugging Face model folder
 * @returns the tokenizer
 * @throws InputError when the file is missing or unreadable
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const file = `${dir}/tokenizer.json`;
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(file));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InputError(`${file}: file not found`);
    throw new InputError(`${file}: cannot parse: ${e instanceof Error ? e.message : e}`);
  }
  let cfg: unknown = {};
  try {
    cfg = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new InputError(`${dir}/tokenizer_config.json: cannot parse: ${e}`);
    }
  }
  return tokenizerFromJson(json, cfg, file);
}

/**
 * Wraps a parsed tokenizer.json.
 * @param json the parsed tokenizer.json
 * @param config the parsed tokenizer_config.json (or {})
 * @param file name used in error messages
 */
export function tokenizerFromJson(
  json: unknown,
  config: unknown = {},
  file = "tokenizer.json",
): TextTokenizer {
  let tok: HfTokenizer;
  try {
    // exact round trips unless the model's tokenizer_config.json asks for the clean-up
    const cfg = { clean_up_tokenization_spaces: false, ...(config as object) };
    tok = new HfTokenizer(json as object, cfg);
  } catch (e) {
    throw new InputError(`${file}: unsupported tokenizer: ${e instanceof Error ? e.message : e}`);
  }
  const vocabSize = tok.get_vocab(true).size;
  return {
    vocabSize,
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) =>
      ids.length === 0 ? "" : tok.decode(Array.from(ids), { skip_special_tokens: true }),
    tokenId: (token) => tok.token_to_id(token) ?? null,
  };
}

/**
 * The byte → printable-character map of byte-level BPE: printable Latin-1 bytes map to
 * themselves, the other 68 bytes to code points from 256 upward, in byte order.
 */
export function byteToUnicode(): string[] {
  const keep = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep(b) ? b : 256 + extra++));
  return out;
}

/** Special tokens of moa's own tokenizers, at ids 0, 1, 2. */
export const SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"] as const;

/**
 * A byte-level BPE `tokenizer.json`: ids 0–2 are the special tokens, 3–258 the 256 bytes, then
 * one token per merge. Digits are split off one by one before BPE, so every digit is its own
 * token and numbers never merge.
 *
 * @param merges pairs of token strings (in byte-level characters), in merge order
 * @returns the tokenizer.json object
 *
 * @example
 * ```ts
 * import { byteLevelTokenizerJson, tokenizerFromJson } from "./tokenizer.ts";
 * const tok = tokenizerFromJson(byteLevelTokenizerJson([]));
 * console.log(tok.decode(tok.encode("line 42")) === "line 42");
 * ```
 */
export function byteLevelTokenizerJson(merges: [string, string][]): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, i) => (vocab[t] = i));
  byteToUnicode().forEach((ch, b) => (vocab[ch] = SPECIAL_TOKENS.length + b));
  let next = SPECIAL_TOKENS.length + 256;
  for (const [a, b] of merges) {
    const m = a + b;
    if (vocab[m] === undefined) vocab[m] = next++;
  }
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: "\\p{N}" }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => [a, b]),
    },
  };
}
