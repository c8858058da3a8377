/**
 * The benchmarks a cell can run, each returning metric rows: LongEval retrieval accuracy,
 * perplexity on held-out text, and prefill/decode throughput with KV-cache size. A method runs
 * through a {@link Decoder} (runtime/decoder.ts: the CPU with the method's cache, or the GPU).
 *
 * @module
 */
import { type LongEvalCase, scoreAnswer, summarize } from "./longeval/longeval.ts";
import { type RulerCase, scoreRuler, summarizeRuler } from "./ruler/ruler.ts";
import { perplexity, tokenLogProbs } from "../runtime/cpu/generate.ts";
import type { CacheFactory } from "../runtime/cpu/method_cache.ts";
import type { Decoder } from "../runtime/decoder.ts";
import { Rng } from "../runtime/rng.ts";
import { promptTokens, type Session } from "../runtime/session.ts";

/** One measurement. */
export interface Metric {
  metric: string;
  /**
   * NaN when there was nothing to measure (a LongEval cell with no cases): the value is
   * missing, which metrics.csv writes as an empty field, not as 0.
   */
  value: number;
  /** How many items the value summarises (cases, tokens, steps). */
  n: number;
}

/** Reports progress inside a benchmark: `done` of `total` items. */
export type Tick = (done: number, total: number) => void;

/**
 * Most tokens an answer may take: room to restate the asked line before the value, as moa-tiny
 * does (`line {key}: REGISTER_CONTENT is <VALUE>`, 15–35 tokens with its tokenizer: a key of
 * digits and mixed case takes one token per character).
 */
export const ANSWER_TOKENS = 48;
/** Prompts generated together in one ragged batch. */
const LONGEVAL_BATCH = 4;

/**
 * LongEval accuracy, overall and per position decile of the asked line.
 * @param record called with each case and whether it was answered correctly (per-case outcomes,
 *   which paired comparisons of two runs read)
 * @returns `accuracy` and `accuracy_decile_<d>` rows, and `prompt_tokens` (mean length); with
 *   no cases, `accuracy` and `prompt_tokens` are missing (NaN, n = 0) rather than 0
 */
export async function runLongEval(
  s: Pick<Session, "tokenizer" | "bos" | "stopTokens">,
  cases: LongEvalCase[],
  method: Decoder,
  tick: Tick,
  record: (c: LongEvalCase, correct: boolean) => void = () => {},
): Promise<Metric[]> {
  const results: { c: LongEvalCase; correct: boolean }[] = [];
  let promptSum = 0;
  for (let i = 0; i < cases.length; i += LONGEVAL_BATCH) {
    const batch = cases.slice(i, i + LONGEVAL_BATCH);
    const prompts = batch.map((c) => promptTokens(s, c.prompt));
    prompts.forEach((p) => (promptSum += p.length));
    const outs = await method.generate(prompts, ANSWER_TOKENS, s.stopTokens);
    batch.forEach((c, j) => {
      const text = s.tokenizer.decode(outs[j]!);
      const { correct } = scoreAnswer(text, c.expected);
      results.push({ c, correct });
      record(c, correct);
    });
    tick(Math.min(i + LONGEVAL_BATCH, cases.length), cases.length);
  }
  if (cases.length === 0) {
    return [
      { metric: "accuracy", value: NaN, n: 0 },
      { metric: "prompt_tokens", value: NaN, n: 0 },
    ];
  }
  const sum = summarize(results);
  return [
    { metric: "accuracy", value: sum.accuracy, n: sum.n },
    ...sum.byDecile.map((d) => ({
      metric: `accuracy_decile_${d.decile}`,
      value: d.accuracy,
      n: d.n,
    })),
    {
      metric: "prompt_tokens",
      value: promptSum / cases.length,
      n: cases.length,
    },
  ];
}

/**
 * RULER's scores (data/ruler/ruler.ts): each case's answer, decoded greedily up to its task's
 * token limit, scored as the share of the expected strings it contains. Cases are generated in
 * ragged batches of one task at a time.
 * @param record called with each case and its score (per-case outcomes)
 * @returns `score` (RULER's average: the mean over tasks), `score_<task>` per task, and
 *   `prompt_tokens` (mean length)
 */
export async function runRuler(
  s: Pick<Session, "tokenizer" | "bos" | "stopTokens">,
  cases: RulerCase[],
  method: Decoder,
  tick: Tick,
  record: (c: RulerCase, score: number) => void = () => {},
): Promise<Metric[]> {
  const results: { task: RulerCase["task"]; score: number }[] = [];
  let promptSum = 0, done = 0;
  const tasks = [...new Set(cases.map((c) => c.task))];
  for (const task of tasks) {
    const mine = cases.filter((c) => c.task === task);
    for (let i = 0; i < mine.length; i += LONGEVAL_BATCH) {
      const batch = mine.slice(i, i + LONGEVAL_BATCH);
      const prompts = batch.map((c) => promptTokens(s, c.prompt));
      prompts.forEach((p) => (promptSum += p.length));
      const outs = await method.generate(prompts, batch[0]!.maxNew, s.stopTokens);
      batch.forEach((c, j) => {
        const score = scoreRuler(s.tokenizer.decode(outs[j]!), c.expected);
        results.push({ task, score });
        record(c, score);
      });
      tick(done += batch.length, cases.length);
    }
  }
  if (cases.length === 0) {
    return [{ metric: "score", value: NaN, n: 0 }, { metric: "prompt_tokens", value: NaN, n: 0 }];
  }
  const sum = summarizeRuler(results);
  return [
    { metric: "score", value: sum.score, n: sum.n },
    ...sum.byTask.map((t) => ({ metric: `score_${t.task}`, value: t.score, n: t.n })),
    { metric: "prompt_tokens", value: promptSum / cases.length, n: cases.length },
  ];
}

/**
 * Perplexity over `total` tokens of `text`, in windows of `length` tokens each scored from an
 * empty cache, fed `chunk` tokens per step. The chunk matters only to a cache that evicts
 * between steps (H2O): its queries see the keys kept so far plus their own chunk, so a chunk
 * far below the budget scores what an evicting cache keeps, where one chunk per window would
 * score dense attention.
 * @returns `perplexity` and `nll` (mean negative log-likelihood, nats) rows
 */
export async function runPerplexity(
  s: Pick<Session, "tokenizer" | "cpu">,
  text: string,
  length: number,
  total: number,
  newCache: CacheFactory,
  tick: Tick,
  chunk = 1024,
): Promise<Metric[]> {
  const ids = s.tokenizer.encode(text);
  const windows = Math.max(1, Math.ceil(total / length));
  if (ids.length < length + 1) {
    throw new RangeError(
      `the held-out text has ${ids.length} tokens, fewer than one window of ${length}`,
    );
  }
  // spread the windows evenly over the text
  const stride = Math.max(1, Math.floor((ids.length - length - 1) / Math.max(1, windows - 1)));
  const lps: number[] = [];
  for (let w = 0; w < windows; w++) {
    const start = Math.min(w * stride, ids.length - length - 1);
    const window = ids.slice(start, start + length + 1);
    const lp = await tokenLogProbs(s.cpu, window, chunk, newCache(window.length));
    for (const x of lp) lps.push(x);
    tick(w + 1, windows);
  }
  const ppl = perplexity(lps);
  return [
    { metric: "perplexity", value: ppl, n: lps.length },
    { metric: "nll", value: Math.log(ppl), n: lps.length },
  ];
}

/**
 * Prefill and decode speed at a context length, and the KV-cache bytes at its end.
 * @returns `prefill_tokens_per_s`, `decode_tokens_per_s`, `kv_bytes` rows
 */
export async function runThroughput(
  s: Pick<Session, "cpu">,
  length: number,
  decode: number,
  batch: number,
  seed: number,
  method: Decoder,
  tick: Tick,
): Promise<Metric[]> {
  const V = s.cpu.model.config.vocabSize;
  const rng = new Rng(seed);
  const prompts = Array.from(
    { length: batch },
    () => Array.from({ length }, () => rng.int(3, V - 1)),
  );
  const { prefillS, decodeS, kvBytes } = await method.time(prompts, decode);
  tick(2, 2);
  return [
    { metric: "prefill_tokens_per_s", value: (batch * length) / prefillS, n: batch * length },
    { metric: "decode_tokens_per_s", value: (batch * decode) / decodeS, n: batch * decode },
    { metric: "kv_bytes", value: kvBytes, n: batch },
  ];
}
