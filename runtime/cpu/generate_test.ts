import assert from "node:assert/strict";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { CpuModel } from "./forward.ts";
import { generateGreedy, perplexity, tokenLogProbs } from "./generate.ts";
import { referenceLogits } from "./_reference.ts";

const config = tinyConfig({ vocabSize: 64 });
const model = randomModel(config, 11, 30);
const cpu = new CpuModel(model);
const rng = new Rng(4);
const prompt = (n: number) => Array.from({ length: n }, () => rng.int(3, 63));

/** Greedy continuation by recomputing the reference forward pass from scratch each token. */
function referenceGreedy(p: number[], n: number, stop: number[] = []): number[] {
  const seq = p.slice();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const logits = referenceLogits(model, seq);
    const last = logits.subarray((seq.length - 1) * 64);
    let best = 0;
    for (let v = 1; v < 64; v++) if (last[v]! > last[best]!) best = v;
    out.push(best);
    seq.push(best);
    if (stop.includes(best)) break;
  }
  return out;
}

Deno.test("generateGreedy() matches recomputing the reference forward pass each token", async () => {
  const ps = [prompt(9), prompt(23), prompt(2)];
  const got = await generateGreedy(cpu, ps, { maxNewTokens: 6, prefillChunk: 8 });
  ps.forEach((p, i) => assert.deepEqual(got[i], referenceGreedy(p, 6)));
});

Deno.test("generateGreedy() stops a sequence at its first stop token and keeps it", async () => {
  const p = prompt(12);
  const free = referenceGreedy(p, 6);
  const stopAt = free[2]!;
  const got = (await generateGreedy(cpu, [p], { maxNewTokens: 6, stopTokens: [stopAt] }))[0]!;
  assert.deepEqual(got, free.slice(0, free.indexOf(stopAt) + 1));
});

Deno.test("tokenLogProbs() equals the reference log-softmax, whatever the chunk size", async () => {
  const ids = prompt(50);
  const ref = referenceLogits(model, ids);
  const want = ids.slice(1).map((next, t) => {
    const row = ref.subarray(t * 64, t * 64 + 64);
    const m = Math.max(...row);
    const z = row.reduce((a, x) => a + Math.exp(x - m), 0);
    return row[next]! - m - Math.log(z);
  });
  for (const chunk of [1, 7, 1024]) {
    const got = await tokenLogProbs(cpu, ids, chunk);
    got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) <= 1e-4, `chunk ${chunk} t ${i}`));
  }
  const ppl = perplexity(want);
  assert.ok(Math.abs(perplexity(await tokenLogProbs(cpu, ids)) - ppl) / ppl < 1e-4);
});
