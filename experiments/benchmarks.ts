/**
 * The benchmarks a cell can run, each returning metric rows: LongEval retrieval accuracy,
 * perplexity on held-out text, and prefill/decode throughput with KV-cache size.
 *
 * @module
 */
import { type LongEvalCase, scoreAnswer, summarize } from "../data/longeval/longeval.ts";
import { generateGreedy, perplexity, tokenLogProbs } from "../runtime/cpu/generate.ts";
import type { CacheFactory } from "../runtime/cpu/methods.ts";
import { Rng } from "../runtime/rng.ts";
import { promptTokens, type Session } from "./session.ts";

/** One measurement. */
export interface Metric {
  metric: string;
  value: number;
  /** How many items the value summarises (cases, tokens, steps). */
  n: number;
}

/** Reports progress inside a benchmark: `done` of `total` items. */
export type Tick = (done: number, total: number) => void;

/** Most tokens an answer may take: a five-digit number in angle brackets and a little slack. */
const ANSWER_TOKENS = 12;
/** Prompts generated together in one ragged batch. */
const LONGEVAL_BATCH = 4;

/**
 * LongEval accuracy, overall and per position decile of the asked line.
 * @returns `accuracy` and `accuracy_decile_<d>` rows, and `prompt_tokens` (mean length)
 */
export async function runLongEval(
  s: Session,
  cases: LongEvalCase[],
  newCache: CacheFactory,
  tick: Tick,
): Promise<Metric[]> {
  const results: { c: LongEvalCase; correct: boolean }[] = [];
  let promptSum = 0;
  for (let i = 0; i < cases.length; i += LONGEVAL_BATCH) {
    const batch = cases.slice(i, i + LONGEVAL_BATCH);
    const prompts = batch.map((c) => promptTokens(s, c.prompt));
    prompts.forEach((p) => (promptSum += p.length));
    const outs = await generateGreedy(s.runner, prompts, {
      maxNewTokens: ANSWER_TOKENS,
      stopTokens: s.stopTokens,
      newCache,
    });
    batch.forEach((c, j) => {
      const text = s.tokenizer.decode(outs[j]!);
      results.push({ c, correct: scoreAnswer(text, c.expected).correct });
    });
    tick(Math.min(i + LONGEVAL_BATCH, cases.length), cases.length);
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
      value: cases.length ? promptSum / cases.length : 0,
      n: cases.length,
    },
  ];
}

/**
 * Perplexity over `total` tokens of `text`, in windows of `length` tokens each scored from an
 * empty cache.
 * @returns `perplexity` and `nll` (mean negative log-likelihood, nats) rows
 */
export async function runPerplexity(
  s: Session,
  text: string,
  length: number,
  total: number,
  newCache: CacheFactory,
  tick: Tick,
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
    const lp = await tokenLogProbs(s.runner, window, 1024, newCache(window.length));
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
  s: Session,
  length: number,
  decode: number,
  batch: number,
  seed: number,
  newCache: CacheFactory,
  tick: Tick,
): Promise<Metric[]> {
  const V = s.runner.model.config.vocabSize;
  const rng = new Rng(seed);
  const prompts = Array.from(
    { length: batch },
    () => Array.from({ length }, () => rng.int(3, V - 1)),
  );
  const caches = prompts.map(() => newCache(length + decode));
  let t0 = performance.now();
  for (let at = 0; at < length; at += 2048) {
    await s.runner.step(
      prompts.map((p, b) => ({ cache: caches[b]!, tokens: p.slice(at, at + 2048) })),
      "last",
    );
  }
  const prefillS = (performance.now() - t0) / 1000;
  tick(1, 2);
  t0 = performance.now();
  for (let i = 0; i < decode; i++) {
    await s.runner.step(caches.map((cache) => ({ cache, tokens: [rng.int(3, V - 1)] })), "last");
  }
  const decodeS = (performance.now() - t0) / 1000;
  tick(2, 2);
  const kv = caches.reduce((a, c) => a + c.bytes(), 0);
  return [
    { metric: "prefill_tokens_per_s", value: (batch * length) / prefillS, n: batch * length },
    { metric: "decode_tokens_per_s", value: (batch * decode) / decodeS, n: batch * decode },
    { metric: "kv_bytes", value: kv, n: batch },
  ];
}
