/**
 * A gradient worker of `GradPool` (grad_pool.ts): its own jax-js WebAssembly instance, which
 * takes one part of a batch at a time and answers its loss and gradient (`GradReply`). The
 * weights arrive with every request, so a worker holds no training state of its own.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { initJax } from "../../runtime/autodiff/jax_model.ts";
import type { Model } from "../../runtime/model.ts";
import { randomModel } from "../../runtime/random_model.ts";
import type { GradReply, GradRequest } from "./grad_pool.ts";
import { namedLossAndGrad, namedWeights } from "./train.ts";

let ready: Promise<unknown> | null = null;
/** A model of the last request's architecture, whose arrays take each request's weights. */
let held: { key: string; model: Model } | null = null;

self.onmessage = async (e: MessageEvent<GradRequest>) => {
  let reply: GradReply;
  try {
    ready ??= initJax("wasm");
    await ready;
    const { config, weights, batch, B, T } = e.data;
    const key = JSON.stringify(config);
    if (held?.key !== key) held = { key, model: randomModel(config, 0) };
    const named = namedWeights(held.model);
    if (named.length !== weights.length) {
      throw new RangeError(`${weights.length} weight arrays, expected ${named.length}`);
    }
    named.forEach((w, i) => w.data.set(weights[i]!));
    reply = await namedLossAndGrad(config, held.model, batch, B, T);
  } catch (err) {
    reply = { error: err instanceof Error ? err.message : String(err) };
  }
  self.postMessage(reply);
};
