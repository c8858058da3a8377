/**
 * The benchmarks a cell can run, each returning metric rows: LongEval retrieval accuracy,
 * perplexity on held-out text, and prefill/decode throughput with KV-cache size.
 *
 * @module
 */
import { type LongEvalCase, scoreAnswer, summarize } from "../data/longeval/longeval.ts";
import { generateGreedy, perplexity, tokenLogProbs } from "../runtime/cpu/generate.ts";
import {
  type CacheFactory,
  cacheFactory,
  type MethodSpec,
  windowRules,
} from "../runtime/cpu/methods.ts";
import type { CpuModel } from "../runtime/cpu/forward.ts";
import type { SparsePlan } from "../runtime/spans.ts";
import type { GpuModel } from "../runtime/gpu/model.ts";
import { Rng } from "../runtime/rng.ts";
import { promptTokens, type Session } from "../runtime/session.ts";

/** Greedy generation and timed decoding of one attention method on one backend. */
export interface MethodRunner {
  /** where it runs, for the CSV */
  backend: "cpu" | "webgpu";
  /**
   * Greedy continuations of a batch of prompts.
   * @param prompts token ids per prompt
   * @param maxNew most new tokens per prompt
   * @param stop stop tokens (kept in the output)
   * @returns generated ids per prompt
   */
  generate(prompts: number[][], maxNew: number, stop: readonly number[]): Promise<number[][]>;
  /**
   * Prefills the prompts, then decodes `decode` steps for all of them together.
   * @returns wall seconds of each phase and the KV bytes held at the end
   */
  time(
    prompts: number[][],
    decode: number,
  ): Promise<{ prefillS: number; decodeS: number; kvBytes: number }>;
}

/**
 * A method on the CPU backend: `newCache` makes each sequence's cache.
 * @param runner the CPU model
 * @param newCache the method's cache factory
 * @returns the runner
 */
export function cpuMethod(runner: CpuModel, newCache: CacheFactory): MethodRunner {
  return {
    backend: "cpu",
    generate: (prompts, maxNew, stop) =>
      generateGreedy(runner, prompts, { maxNewTokens: maxNew, stopTokens: stop, newCache }),
    async time(prompts, decode) {
      const V = runner.model.config.vocabSize;
      const rng = new Rng(prompts.length * 7919 + decode);
      const length = Math.max(...prompts.map((p) => p.length));
      const caches = prompts.map((p) => newCache(p.length + decode));
      let t0 = performance.now();
      for (let at = 0; at < length; at += 2048) {
        const live = prompts.map((p, b) => ({ p, b })).filter(({ p }) => p.length > at);
        await runner.step(
          live.map(({ p, b }) => ({ cache: caches[b]!, tokens: p.slice(at, at + 2048) })),
          "last",
        );
      }
      const prefillS = (performance.now() - t0) / 1000;
      t0 = performance.now();
      for (let i = 0; i < decode; i++) {
        await runner.step(caches.map((cache) => ({ cache, tokens: [rng.int(3, V - 1)] })), "last");
      }
      const decodeS = (performance.now() - t0) / 1000;
      return { prefillS, decodeS, kvBytes: caches.reduce((a, c) => a + c.bytes(), 0) };
    },
  };
}

/**
 * A method on the WebGPU backend: `plan` (null = dense) shapes every head's cache segment.
 * @param model the model on the GPU
 * @param plan per-head rules, or null for dense
 * @returns the runner
 */
export function gpuMethod(model: GpuModel, plan: SparsePlan | null): MethodRunner {
  return {
    backend: "webgpu",
    async generate(prompts, maxNew, stop) {
      const maxLength = Math.max(...prompts.map((p) => p.length)) + maxNew;
      const s = await model.session({ batch: prompts.length, maxLength, plan });
      try {
        return await s.generate(prompts, { maxNewTokens: maxNew, stopTokens: stop });
      } finally {
        s.destroy();
      }
    },
    async time(prompts, decode) {
      const longest = Math.max(...prompts.map((p) => p.length));
      const s = await model.session({
        batch: prompts.length,
        maxLength: longest + decode,
        plan,
      });
      try {
        let t0 = performance.now();
        for (let b = 0; b < prompts.length; b++) await s.prefill(b, prompts[b]!);
        await s.sync();
        const prefillS = (performance.now() - t0) / 1000;
        s.startDecode(prompts.map((p) => p.length));
        t0 = performance.now();
        for (let done = 0; done < decode; done += 64) {
          s.submitDecode(Math.min(64, decode - done));
        }
        await s.sync();
        const decodeS = (performance.now() - t0) / 1000;
        const kvBytes = prompts.reduce((a, p) => a + s.kvBytesAt(p.length + decode), 0);
        return { prefillS, decodeS, kvBytes };
      } finally {
        s.destroy();
      }
    },
  };
}

/**
 * The runner of a method in a session, shared by the experiment runner and `deno task longeval`:
 * on the GPU when the session has one and the method has a GPU cache (dense, moa and its
 * variants, streaming), else on the CPU with the method's cache. H2O has no GPU cache.
 *
 * @param s the loaded model
 * @param spec the method, its density, sink and (for moa) plan
 * @returns the runner; its `backend` says where it runs
 * @throws {RangeError} for moa without a plan, or a density outside (0, 1] for streaming
 */
export function sessionMethod(s: Session, spec: MethodSpec): MethodRunner {
  if (s.gpu && spec.method !== "h2o") {
    if (spec.method === "dense") return gpuMethod(s.gpu, null);
    if (spec.method === "streaming") {
      return gpuMethod(s.gpu, windowRules(s.runner.model.config, spec));
    }
    if (spec.plan) return gpuMethod(s.gpu, spec.plan);
  }
  return cpuMethod(s.runner, cacheFactory(s.runner, spec));
}

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
 * @returns `accuracy` and `accuracy_decile_<d>` rows, and `prompt_tokens` (mean length); with
 *   no cases, `accuracy` and `prompt_tokens` are missing (NaN, n = 0) rather than 0
 */
export async function runLongEval(
  s: Session,
  cases: LongEvalCase[],
  method: MethodRunner,
  tick: Tick,
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
      results.push({ c, correct: scoreAnswer(text, c.expected).correct });
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
 * Perplexity over `total` tokens of `text`, in windows of `length` tokens each scored from an
 * empty cache, fed `chunk` tokens per step. The chunk matters only to a cache that evicts
 * between steps (H2O): its queries see the keys kept so far plus their own chunk, so a chunk
 * far below the budget scores what an evicting cache keeps, where one chunk per window would
 * score dense attention.
 * @returns `perplexity` and `nll` (mean negative log-likelihood, nats) rows
 */
export async function runPerplexity(
  s: Session,
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
    const lp = await tokenLogProbs(s.runner, window, chunk, newCache(window.length));
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
  method: MethodRunner,
  tick: Tick,
): Promise<Metric[]> {
  const V = s.runner.model.config.vocabSize;
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
