import assert from "node:assert/strict";
import { getGpu, hasGpu } from "./device.ts";
import { allocateActivations, allocateSampleState, destroyBuffers } from "./session_buffers.ts";
import { tinyConfig } from "../random_model.ts";

Deno.test({
  name: "allocateActivations() sizes every buffer for max(batch, chunk) rows",
  ignore: !(await hasGpu()),
}, async () => {
  const gpu = await getGpu();
  const c = tinyConfig({ numHeads: 4, numKvHeads: 2, headDim: 8, hiddenSize: 32 });
  const a = allocateActivations(gpu, c, { batch: 3, prefillChunk: 16, maxLength: 40, splits: 2 });
  const st = allocateSampleState(gpu, 3, 40);
  const R = 16, width = (4 + 2 * 2) * 8, F = c.intermediateSize;
  assert.equal(a.width, width);
  assert.deepEqual(
    [a.x.size, a.xn.size, a.qkv.size, a.att.size, a.gu.size, a.act.size],
    [R * 32 * 4, R * 32 * 4, R * width * 4, R * 4 * 8 * 4, R * 2 * F * 4, R * F * 4],
  );
  assert.equal(a.logits.size, 3 * c.vocabSize * 4);
  assert.equal(a.rope.size, 40 * 4 * 2 * 4); // (maxLength, HS/2, 2) f32
  // per sequence, head and split: a max and a sum, and an HS-wide partial output
  assert.deepEqual([a.scratch.pm.size, a.scratch.pacc.size], [3 * 4 * 2 * 4, 3 * 4 * 2 * 8 * 4]);
  assert.equal(st.out.size, 3 * 40 * 4);
  destroyBuffers(a, st);
});
