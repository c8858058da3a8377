import assert from "node:assert/strict";
import { hasGpu } from "./device.ts";
import { GpuModel } from "./model.ts";
import { GpuSession } from "./session.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { forwardLogits } from "../cpu/forward.ts";
import { assertAllClose } from "../_testing.ts";

const ignore = !(await hasGpu());

Deno.test({
  name: "the prefill op lists give the CPU's logits whatever the chunk, and decode continues",
  ignore,
}, async () => {
  const model = randomModel(tinyConfig({ numLayers: 3 }), 5);
  const V = model.config.vocabSize, T = 45;
  const toks = Array.from({ length: T }, (_, i) => (i * 13 + 5) % V);
  const want = await forwardLogits(model, toks);
  const g = await GpuModel.load(model);
  try {
    // chunks of 45 (one), 16 (three, the last short) and 1 (token by token)
    for (const prefillChunk of [64, 16, 1]) {
      const s = await GpuSession.create(g, { batch: 1, maxLength: 64, plan: null, prefillChunk });
      try {
        await s.prefill(0, toks);
        const got = await s.lastLogits();
        assertAllClose(got, want.subarray((T - 1) * V), { atol: 1e-4 }, `chunk ${prefillChunk}`);
      } finally {
        s.destroy();
      }
    }
    // the decode step's greedy tokens are the CPU's argmax after each appended token
    const s = await GpuSession.create(g, { batch: 1, maxLength: 64, plan: null });
    try {
      const [out] = await s.generate([toks], { maxNewTokens: 3 });
      const seq = [...toks];
      for (const token of out!) {
        const logits = (await forwardLogits(model, seq)).subarray((seq.length - 1) * V);
        assert.equal(token, logits.indexOf(Math.max(...logits)));
        seq.push(token);
      }
    } finally {
      s.destroy();
    }
  } finally {
    g.destroy();
  }
});
