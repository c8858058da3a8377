/**
 * Where a method generates: a {@link Decoder} runs greedy generation and timed decoding of one
 * attention method on one backend, the CPU with the method's cache ({@link cpuDecoder}) or the
 * GPU with its cache layout ({@link gpuDecoder}); {@link sessionDecoder} picks one for a session.
 * The benchmarks (data/benchmarks.ts) measure through it.
 *
 * @module
 */
import { generateGreedy } from "./cpu/generate.ts";
import { type CacheFactory, cacheFactory } from "./cpu/method_cache.ts";
import type { CpuModel } from "./cpu/forward.ts";
import type { GpuModel } from "./gpu/model.ts";
import { GpuSession } from "./gpu/session.ts";
import { cacheOf, hasGpuCache, type MethodSpec, windowRules } from "./methods.ts";
import { Rng } from "./rng.ts";
import type { Session } from "./session.ts";
import type { SparsePlan } from "./spans.ts";

/** Greedy generation and timed decoding of one attention method on one backend. */
export interface Decoder {
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
 * @param cpu the CPU model
 * @param newCache the method's cache factory
 * @returns the decoder
 */
export function cpuDecoder(cpu: CpuModel, newCache: CacheFactory): Decoder {
  return {
    backend: "cpu",
    generate: (prompts, maxNew, stop) =>
      generateGreedy(cpu, prompts, { maxNewTokens: maxNew, stopTokens: stop, newCache }),
    async time(prompts, decode) {
      const V = cpu.model.config.vocabSize;
      const rng = new Rng(prompts.length * 7919 + decode);
      const length = Math.max(...prompts.map((p) => p.length));
      const caches = prompts.map((p) => newCache(p.length + decode, p.length));
      let t0 = performance.now();
      for (let at = 0; at < length; at += 2048) {
        const live = prompts.map((p, b) => ({ p, b })).filter(({ p }) => p.length > at);
        await cpu.step(
          live.map(({ p, b }) => ({ cache: caches[b]!, tokens: p.slice(at, at + 2048) })),
          "last",
        );
      }
      const prefillS = (performance.now() - t0) / 1000;
      t0 = performance.now();
      for (let i = 0; i < decode; i++) {
        await cpu.step(caches.map((cache) => ({ cache, tokens: [rng.int(3, V - 1)] })), "last");
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
 * @returns the decoder
 */
export function gpuDecoder(model: GpuModel, plan: SparsePlan | null): Decoder {
  return {
    backend: "webgpu",
    async generate(prompts, maxNew, stop) {
      const maxLength = Math.max(...prompts.map((p) => p.length)) + maxNew;
      const s = await GpuSession.create(model, { batch: prompts.length, maxLength, plan });
      try {
        return await s.generate(prompts, { maxNewTokens: maxNew, stopTokens: stop });
      } finally {
        s.destroy();
      }
    },
    async time(prompts, decode) {
      const longest = Math.max(...prompts.map((p) => p.length));
      const s = await GpuSession.create(model, {
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
 * The decoder of a method in a session, shared by the experiment runner and `deno task
 * longeval`: on the GPU when the session has one and the method has a GPU cache (dense, moa and
 * its variants, streaming, duo: `hasGpuCache`), else on the CPU with the method's cache. H2O,
 * SnapKV and Ada-KV have no GPU cache.
 *
 * @param s the loaded model
 * @param spec the method, its density, sink and (for moa and duo) rules
 * @returns the decoder; its `backend` says where it runs
 * @throws {RangeError} for moa or duo without rules, or a density outside (0, 1] for streaming
 */
export function sessionDecoder(s: Session, spec: MethodSpec): Decoder {
  const cache = cacheOf(spec.method);
  if (s.gpu && hasGpuCache(spec.method)) {
    // dense is one full-length window per head: no rules
    if (cache === "dense") return gpuDecoder(s.gpu, null);
    return gpuDecoder(s.gpu, windowRules(s.cpu.model.config, spec));
  }
  return cpuDecoder(s.cpu, cacheFactory(s.cpu, spec));
}
