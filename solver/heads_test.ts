import assert from "node:assert/strict";
import { CpuModel } from "../runtime/cpu/forward.ts";
import { randomModel, tinyConfig } from "../runtime/random_model.ts";
import { Rng } from "../runtime/rng.ts";
import { headStats, inductionScores, StatsKvCache } from "./heads.ts";
import { assertAllClose } from "../runtime/_testing.ts";

const config = tinyConfig({ numLayers: 2, numHeads: 4, numKvHeads: 2 });
const rng = new Rng(2);
const prompt = Array.from({ length: 150 }, () => rng.int(3, config.vocabSize - 1));

Deno.test("StatsKvCache attends exactly like the dense cache", async () => {
  const cpu = new CpuModel(randomModel(config, 4, 8));
  const dense = (await cpu.step([{ cache: cpu.newCache(), tokens: prompt }], "all"))[0]!;
  const stats = (await cpu.step([{ cache: new StatsKvCache(config), tokens: prompt }], "all"))[0]!;
  assertAllClose(dense, stats, { atol: 1e-5 });
});

Deno.test("headStats() gives the closed form for uniform attention", async () => {
  // zero query weights make every score 0: query i spreads 1/(i+1) over keys 0..i
  const model = randomModel(config, 4, 8);
  for (const l of model.weights.layers) l.wq.fill(0);
  const stats = await headStats(new CpuModel(model), [prompt], { sinkTokens: 64, minQuery: 100 });
  const qs = Array.from({ length: 50 }, (_, k) => 100 + k); // queries 100..149
  const wantDistance = qs.reduce((a, i) => a + i / 2, 0) / qs.length;
  const wantSink = qs.reduce((a, i) => a + 64 / (i + 1), 0) / qs.length;
  assert.equal(stats.length, config.numLayers * config.numHeads);
  for (const s of stats) {
    assert.ok(
      Math.abs(s.meanDistance - wantDistance) < 1e-3,
      `distance ${s.meanDistance} vs ${wantDistance}`,
    );
    assert.ok(Math.abs(s.sinkMass - wantSink) < 1e-5, `sink ${s.sinkMass} vs ${wantSink}`);
    assert.ok(Math.abs(s.meanContext - 125.5) < 1e-9);
  }
});

Deno.test("headStats() induction and previous-token mass: closed form for uniform attention", async () => {
  // a prompt with a repeated half, so that keys after earlier occurrences exist
  const r = Array.from({ length: 40 }, () => rng.int(3, 30));
  const p = [1, ...r, ...r];
  const model = randomModel(config, 4, 8);
  for (const l of model.weights.layers) l.wq.fill(0);
  const stats = await headStats(new CpuModel(model), [p], { minQuery: 41 });
  let wantPrev = 0, wantInd = 0, wantDup = 0, q = 0;
  for (let i = 41; i < p.length; i++) {
    let matches = 0, dups = 0;
    for (let j = 1; j < i; j++) if (p[j - 1] === p[i]) matches++;
    for (let j = 0; j < i; j++) if (p[j] === p[i]) dups++;
    wantPrev += 1 / (i + 1);
    wantInd += matches / (i + 1);
    wantDup += dups / (i + 1);
    q++;
  }
  for (const st of stats) {
    assert.ok(Math.abs(st.prevMass - wantPrev / q) < 1e-6, `prev ${st.prevMass}`);
    assert.ok(Math.abs(st.inductionMass - wantInd / q) < 1e-6, `induction ${st.inductionMass}`);
    assert.ok(Math.abs(st.duplicateMass - wantDup / q) < 1e-6, `duplicate ${st.duplicateMass}`);
  }
});

Deno.test("inductionScores() is seeded and bounded, and a random model does not copy", async () => {
  const cpu = new CpuModel(randomModel(config, 4, 8));
  const o = { span: 20, sequences: 2, vocab: 50, seed: 3 };
  const a = await inductionScores(cpu, o), b = await inductionScores(cpu, o);
  assert.deepEqual(a, b, "seeded");
  assert.ok(a.copyAccuracy >= 0 && a.copyAccuracy <= 0.2, `random model copies ${a.copyAccuracy}`);
  for (const h of a.heads) {
    assert.ok(h.prevMass > 0 && h.prevMass < 1 && h.inductionMass > 0 && h.inductionMass < 1);
  }
});

Deno.test("headStats() tells a local head from a uniform one", async () => {
  // a strong positive q·k on matching positions is hard to build; instead compare two models:
  // uniform attention (wq = 0) has a larger mean distance than a random peaky one at scale 40
  const uniform = randomModel(config, 4, 8);
  for (const l of uniform.weights.layers) l.wq.fill(0);
  const u = await headStats(new CpuModel(uniform), [prompt], { minQuery: 100 });
  const maxU = Math.max(...u.map((s) => s.meanDistance));
  const minU = Math.min(...u.map((s) => s.meanDistance));
  assert.ok(maxU - minU < 1e-6, "uniform heads all look equally far");
  const peaky = await headStats(new CpuModel(randomModel(config, 4, 40)), [prompt], {
    minQuery: 100,
  });
  assert.ok(
    peaky.some((s) => Math.abs(s.meanDistance - maxU) > 5),
    "peaky heads differ from uniform",
  );
});
