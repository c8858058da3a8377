/**
 * Calibration sets for MoA profiling (DESIGN.md §3.3): long-range-dependency prompts whose
 * responses come from the dense model itself, and the two alternatives the paper compares:
 * ground-truth ("reference") responses, and plain language-model loss over the context.
 *
 * Each sample is exactly `length` tokens: [BOS] + prompt + response, padded with EOS. The loss
 * mask is 1 on response tokens (on every token for `context`), 0 elsewhere. Half the samples are
 * LongEval records (keys from the training word list, so evaluation keys stay unseen), half are
 * Brown passages followed by an instruction to repeat their first sentence.
 *
 * @module
 */
import { COPY_INSTRUCTION, loadBrownCorpus } from "./train/mix.ts";
import { formatLine, formatQuestion, HEADER } from "./longeval/longeval.ts";
import { TRAIN_WORDS } from "./longeval/words.ts";
import { generateGreedy } from "../runtime/cpu/generate.ts";
import type { CpuModel } from "../runtime/cpu/forward.ts";
import type { TextTokenizer } from "../runtime/tokenizer.ts";
import { Rng } from "../runtime/rng.ts";

/** One calibration sequence: next-token targets and the loss weight of each position. */
export interface CalibrationSample {
  /** (T) */
  tokens: Int32Array;
  /** (T) */
  targets: Int32Array;
  /** (T) loss weights: 1 on response tokens, 0 elsewhere */
  mask: Float32Array;
}

/** Where the responses of a calibration set come from. */
export type CalibrationKind = "model" | "reference" | "context";

/** Options of `buildCalibration`. */
export interface CalibrationOptions {
  /** Tokens per sample. */
  length: number;
  /** Number of samples. */
  samples: number;
  /** Seed for the prompts and passages; equal seeds give identical samples. */
  seed: number;
  /** Where the responses come from (DESIGN.md §3.3). */
  kind: CalibrationKind;
  /** Most response tokens. @default 48 */
  maxResponse?: number;
  /** Brown documents to draw passages from (tests use few). @default all */
  brownDocuments?: number;
}

const BOS = 1, EOS = 2;

/** A prompt and its ground-truth response, as text. */
interface Task {
  prompt: string;
  reference: string;
}

function longEvalTask(rng: Rng, tok: TextTokenizer, budget: number): Task {
  const keys = new Set<string>();
  const lines: { key: string; value: number }[] = [];
  const question = (k: string) => formatQuestion(k);
  let text = HEADER;
  for (;;) {
    const key = `${rng.pick(TRAIN_WORDS.adjectives)}-${rng.pick(TRAIN_WORDS.nouns)}`;
    if (keys.has(key)) continue;
    const value = rng.int(1, 50000);
    const line = formatLine(key, value);
    if (tok.encode(text + line + question(key)).length + 1 > budget && lines.length >= 2) break;
    keys.add(key);
    lines.push({ key, value });
    text += line;
  }
  const asked = rng.pick(lines);
  return { prompt: text + question(asked.key), reference: ` <${asked.value}>\n` };
}

async function copyTask(
  rng: Rng,
  tok: TextTokenizer,
  budget: number,
  documents?: number,
): Promise<Task> {
  const corpus = await loadBrownCorpus(tok, documents === undefined ? {} : { documents });
  const fits = corpus.passages.filter((p) => p.start + budget < corpus.tokens.length);
  const p = rng.pick(fits);
  const instruction = tok.encode(COPY_INSTRUCTION).length;
  const passage = corpus.tokens.subarray(p.start, p.start + Math.max(1, budget - instruction - 1));
  return { prompt: tok.decode(passage) + COPY_INSTRUCTION, reference: `${p.sentence}\n` };
}

/**
 * Builds a calibration set.
 * @param cpu the dense model (generates the responses of kind `model`)
 * @param tok its tokenizer
 */
export async function buildCalibration(
  cpu: CpuModel,
  tok: TextTokenizer,
  o: CalibrationOptions,
): Promise<CalibrationSample[]> {
  const rng = new Rng(o.seed);
  const maxResponse = o.maxResponse ?? 48;
  const out: CalibrationSample[] = [];
  const newline = tok.encode("\n");
  for (let s = 0; s < o.samples; s++) {
    let ids: number[];
    let respStart: number;
    if (o.kind === "context") {
      const corpus = await loadBrownCorpus(
        tok,
        o.brownDocuments === undefined ? {} : { documents: o.brownDocuments },
      );
      const start = rng.int(0, corpus.tokens.length - o.length - 2);
      ids = Array.from(corpus.tokens.subarray(start, start + o.length + 1));
      respStart = 0;
    } else {
      const budget = o.length - maxResponse;
      const task = s % 2 === 0
        ? longEvalTask(rng, tok, budget)
        : await copyTask(rng, tok, budget, o.brownDocuments);
      const prompt = [BOS, ...tok.encode(task.prompt)];
      let response: number[];
      if (o.kind === "reference") {
        response = tok.encode(task.reference).slice(0, maxResponse);
      } else {
        response = (await generateGreedy(cpu, [prompt], {
          maxNewTokens: maxResponse,
          stopTokens: [EOS, ...(newline.length === 1 ? newline : [])],
        }))[0]!;
      }
      ids = [...prompt, ...response];
      respStart = prompt.length;
    }
    if (respStart >= o.length) {
      throw new RangeError(
        `calibration: a prompt needs ${respStart} tokens, leaving no room for a response in ${o.length}; use longer lengths`,
      );
    }
    // inputs are ids[0..length), targets ids[1..length]; pad with EOS, masked out
    const tokens = new Int32Array(o.length).fill(EOS);
    const targets = new Int32Array(o.length).fill(EOS);
    const mask = new Float32Array(o.length);
    for (let t = 0; t < o.length && t + 1 < ids.length; t++) {
      tokens[t] = ids[t]!;
      targets[t] = ids[t + 1]!;
      if (t + 1 >= respStart) mask[t] = 1; // predicting a response token
    }
    if (o.kind !== "context") {
      for (let t = ids.length - 1; t < o.length; t++) tokens[t] = ids[t] ?? EOS;
    }
    out.push({ tokens, targets, mask });
  }
  return out;
}
