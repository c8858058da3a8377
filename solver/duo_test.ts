import assert from "node:assert/strict";
import { byteModel } from "../runtime/_testing.ts";
import { trainDuoGates } from "./duo.ts";

Deno.test("trainDuoGates(): a kv head whose values are zero gets the lowest gate", async () => {
  const { cpu, tok } = byteModel();
  const model = structuredClone(cpu.model);
  const { headDim: HS, hiddenSize: C } = model.config;
  // layer 1, kv head 0 writes nothing: streaming or full, its output is 0
  model.weights.layers[1]!.wv.fill(0, 0, HS * C);
  const { gates, history } = await trainDuoGates(model, tok, 1, {
    steps: 16,
    lr: 0.08,
    reg: 0.05,
    length: 480,
    sink: 4,
    recent: 16,
    keys: 2,
    seed: 0,
  });
  assert.equal(history.length, 16);
  assert.ok(history[0]!.distill < 1e-9, "all gates start at 1: the full model itself");
  assert.ok(history.at(-1)!.distill > 0, "streaming changes the hidden states");
  const flat = gates.flat();
  assert.ok(flat.every((x) => x >= 0 && x <= 1));
  const silent = gates[1]![0]!;
  for (const [i, x] of flat.entries()) if (i !== 2) assert.ok(silent < x, `gates ${flat}`);
  // with nothing to lose, its gate fell at the L1 penalty's full pace
  assert.ok(silent < 0.2, `${silent}`);
});
