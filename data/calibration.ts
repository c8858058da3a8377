/**
 * Calibration sets for MoA profiling (DESIGN.md §3.3): long-range-dependency prompts whose
 * responses come from the dense model itself, and the two alternatives the paper compares:
 * ground-truth ("reference") responses, and plain language-model loss over the context.
 *
 * Each sample is exactly `length` tokens: [BOS] + prompt + response(s), padded with EOS. The loss
 * mask is 1 on response tokens (on every token for `context`), 0 elsewhere. Half the samples are
 * LongEval records in LongChat's exact format (keys from the varied training source of
 * `data/longeval/keys.ts`, so evaluation keys stay unseen) with up to {@link QUESTIONS} questions,
 * each followed by its response, so a sample scores a few dozen response tokens rather than one
 * answer; half are recall records: bare record lines (no header, no question), then
 * {@link RECALLS} of them restated up to `REGISTER_CONTENT is`, each completed by the response,
 * the value and a newline.
 *
 * The recall task replaced an earlier one (calibration version 2), a Brown passage followed by an
 * instruction to repeat its first sentence: moa-tiny copies a few words of the sentence and then
 * loops (`"I was a very very very …"` to the token cap; 0 of 12 right at 1,024 tokens even with the
 * sentence's first three words given), so half of that profile rested on degenerate text. Recall
 * is the lookup the model was trained on (data/train/mix.ts, `recall`) and it answers it (24 of 24
 * right at 1,024 tokens).
 *
 * Every sample records its responses ({@link CalibrationSample.responses}): how many tokens each
 * has and whether it is right (the last integer is the asked value). {@link describeCalibration}
 * prints their distribution, so a profile that rests on empty or wrong responses shows it.
 *
 * @module
 */
import { loadBrownCorpus } from "./train/mix.ts";
import { formatLine, formatQuestion, HEADER, scoreAnswer } from "./longeval/longeval.ts";
import { loadTrainKeySampler, type TrainKeySampler } from "./longeval/keys.ts";
import { generateGreedy } from "../runtime/cpu/generate.ts";
import type { CpuModel } from "../runtime/cpu/forward.ts";
import type { TextTokenizer } from "../runtime/tokenizer.ts";
import { Rng } from "../runtime/rng.ts";

/**
 * Bumped whenever the samples a seed gives change, so that cached profiles of older calibration
 * sets are not reused (2: LongChat's trailing space, varied keys, several questions per record;
 * 3: recall records instead of repeating a passage's first sentence).
 */
export const CALIBRATION_VERSION = 3;

/** Most questions asked of one LongEval record. */
export const QUESTIONS = 4;

/** Most lines restated in one recall record. */
export const RECALLS = 8;

/** Most tokens of one recall response (a value ` <49999>` and the newline take 8 in moa-tiny). */
const RECALL_RESPONSE = 16;

/** The start of a restated record line; the response completes it with ` <VALUE>` and "\n". */
export function recallPrompt(key: string): string {
  return `line ${key}: REGISTER_CONTENT is`;
}

/** One response of a calibration sample. */
export interface CalibrationResponse {
  /** which task it answers */
  task: "longeval" | "recall";
  /** its tokens (0: the model stopped at once) */
  tokens: number;
  /** whether it is right: the asked value is its last integer */
  correct: boolean;
}

/** One calibration sequence: next-token targets and the loss weight of each position. */
export interface CalibrationSample {
  /** (T) */
  tokens: Int32Array;
  /** (T) */
  targets: Int32Array;
  /** (T) loss weights: 1 on response tokens, 0 elsewhere */
  mask: Float32Array;
  /** the sample's responses, in order (none for `context`) */
  responses?: CalibrationResponse[];
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
  /** Most tokens of one response. @default 48 */
  maxResponse?: number;
  /** Brown documents to draw passages from (tests use few). @default all */
  brownDocuments?: number;
}

const BOS = 1, EOS = 2;

/** A LongEval record and the lines its questions ask, as text. */
interface RecordTask {
  /** header and record lines */
  record: string;
  /** the asked lines, in asking order */
  asked: { key: string; value: number }[];
}

/**
 * A record that leaves room for `questions` questions and responses in `budget` tokens. Lines
 * are counted one at a time (their token counts add up, as the pre-tokenizer splits at line
 * starts), then the whole is checked once and trimmed if a tokenizer merges across lines.
 */
function recordTask(
  rng: Rng,
  tok: TextTokenizer,
  keys: TrainKeySampler,
  budget: number,
  maxResponse: number,
): RecordTask {
  const used = new Set<string>();
  const lines: { key: string; value: number }[] = [];
  const qCost = (k: string) => tok.encode(formatQuestion(k)).length + maxResponse;
  const room = (n: number) => budget - QUESTIONS * qCost(lines[0]?.key ?? "x") - n;
  let count = 1 + tok.encode(HEADER).length;
  for (;;) {
    const line = { key: keys.draw(rng, used), value: rng.int(1, 50000) };
    const n = tok.encode(formatLine(line.key, line.value)).length;
    if (lines.length >= 2 && room(count + n) < 0) break;
    lines.push(line);
    count += n;
  }
  const text = () => HEADER + lines.map((l) => formatLine(l.key, l.value)).join("");
  while (lines.length > 2 && 1 + tok.encode(text()).length > budget - QUESTIONS * qCost("x")) {
    lines.pop();
  }
  const asked = rng.shuffle([...lines]).slice(0, QUESTIONS);
  return { record: text(), asked };
}

/**
 * Record lines without a header that leave room for {@link RECALLS} restated lines and their
 * responses in `budget` tokens, and the lines to restate.
 */
function recallTask(
  rng: Rng,
  tok: TextTokenizer,
  keys: TrainKeySampler,
  budget: number,
  maxResponse: number,
): RecordTask {
  const used = new Set<string>();
  const lines: { key: string; value: number }[] = [];
  const cost = (k: string) => tok.encode(recallPrompt(k)).length + maxResponse;
  let count = 1;
  for (;;) {
    const line = { key: keys.draw(rng, used), value: rng.int(1, 50000) };
    const n = tok.encode(formatLine(line.key, line.value)).length;
    if (lines.length >= 2 && count + n + RECALLS * cost(line.key) > budget) break;
    lines.push(line);
    count += n;
  }
  const text = () => lines.map((l) => formatLine(l.key, l.value)).join("");
  while (lines.length > 2 && 1 + tok.encode(text()).length > budget - RECALLS * cost("x")) {
    lines.pop();
  }
  return { record: text(), asked: rng.shuffle([...lines]).slice(0, RECALLS) };
}

/**
 * The response-length distribution and the share of right responses of a calibration set, per
 * task, as lines of text (for the plan log and `deno task plan`).
 *
 * @param samples a calibration set
 * @returns one line per task, e.g. `longeval: 32 responses, tokens min 19 / median 21 / max 24,
 *   0 empty, 0.81 right`
 * @example
 * ```ts
 * import { describeCalibration } from "./calibration.ts";
 * const r = { task: "recall" as const, tokens: 8, correct: true };
 * const s = { tokens: new Int32Array(1), targets: new Int32Array(1), mask: new Float32Array(1) };
 * console.log(describeCalibration([{ ...s, responses: [r] }])); // ["recall: 1 responses, …"]
 * ```
 */
export function describeCalibration(samples: readonly CalibrationSample[]): string[] {
  const out: string[] = [];
  for (const task of ["longeval", "recall"] as const) {
    const rs = samples.flatMap((s) => s.responses ?? []).filter((r) => r.task === task);
    if (rs.length === 0) continue;
    const n = rs.map((r) => r.tokens).sort((a, b) => a - b);
    const q = (f: number) => n[Math.min(n.length - 1, Math.floor(f * n.length))]!;
    const right = rs.filter((r) => r.correct).length / rs.length;
    out.push(
      `${task}: ${rs.length} responses, tokens min ${n[0]} / median ${q(0.5)} / max ${n.at(-1)}, ` +
        `${n.filter((x) => x <= 1).length} of at most one token, ${right.toFixed(2)} right`,
    );
  }
  return out;
}

/**
 * Builds a calibration set.
 * @param cpu the dense model (generates the responses of kind `model`)
 * @param tok its tokenizer
 * @param o see {@link CalibrationOptions}
 * @returns `o.samples` samples of `o.length` tokens
 * @throws {RangeError} when a prompt leaves no room for a response
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
  const stop = [EOS, ...(newline.length === 1 ? newline : [])];
  const keys = o.kind === "context" ? null : await loadTrainKeySampler();
  // the response to a prompt: the model's own greedy answer, or the given truth
  const respond = async (ids: number[], truth: string, most = maxResponse): Promise<number[]> =>
    o.kind === "reference"
      ? tok.encode(truth).slice(0, most)
      : (await generateGreedy(cpu, [ids], { maxNewTokens: most, stopTokens: stop }))[0]!;
  for (let s = 0; s < o.samples; s++) {
    let ids: number[];
    let respStart: number;
    const responses: CalibrationResponse[] = [];
    const spans: [number, number][] = []; // [start, end) of each response in ids
    if (o.kind === "context") {
      const corpus = await loadBrownCorpus(
        tok,
        o.brownDocuments === undefined ? {} : { documents: o.brownDocuments },
      );
      const start = rng.int(0, corpus.tokens.length - o.length - 2);
      ids = Array.from(corpus.tokens.subarray(start, start + o.length + 1));
      respStart = 0;
      spans.push([1, ids.length]);
    } else {
      // even samples: LongChat's questions; odd ones: recall (restated lines)
      const recall = s % 2 === 1;
      const most = recall ? Math.min(maxResponse, RECALL_RESPONSE) : maxResponse;
      const task = recall
        ? recallTask(rng, tok, keys!, o.length, most)
        : recordTask(rng, tok, keys!, o.length, most);
      ids = [BOS, ...tok.encode(task.record)];
      respStart = -1;
      for (const line of task.asked) {
        const q = tok.encode(recall ? recallPrompt(line.key) : formatQuestion(line.key));
        if (ids.length + q.length + 1 >= o.length) break;
        ids.push(...q);
        if (respStart < 0) respStart = ids.length;
        // the truth in its plainest form: the value after the question's space, or after "is"
        const r = await respond(ids, `${recall ? " " : ""}<${line.value}>\n`, most);
        spans.push([ids.length, ids.length + r.length]);
        ids.push(...r);
        responses.push({
          task: recall ? "recall" : "longeval",
          tokens: r.length,
          correct: scoreAnswer(tok.decode(r), line.value).correct,
        });
        if (r.at(-1) !== newline[0]) ids.push(...newline); // the next one on its own line
      }
    }
    if (respStart < 0 || respStart >= o.length) {
      throw new RangeError(
        `calibration: a prompt needs ${
          respStart < 0 ? ids.length : respStart
        } tokens, leaving no room for a response in ${o.length}; use longer lengths`,
      );
    }
    // inputs are ids[0..length), targets ids[1..length]; pad with EOS, masked out
    const tokens = new Int32Array(o.length).fill(EOS);
    const targets = new Int32Array(o.length).fill(EOS);
    const mask = new Float32Array(o.length);
    for (let t = 0; t < o.length && t < ids.length; t++) tokens[t] = ids[t]!;
    for (let t = 0; t < o.length && t + 1 < ids.length; t++) targets[t] = ids[t + 1]!;
    // predicting response token j (ids[j]) happens at position j − 1
    for (const [a, b] of spans) {
      for (let j = Math.max(1, a); j < Math.min(b, o.length + 1); j++) mask[j - 1] = 1;
    }
    out.push({ tokens, targets, mask, ...(o.kind === "context" ? {} : { responses }) });
  }
  return out;
}
