import assert from "node:assert/strict";
import { InputError } from "./errors.ts";
import { randomModel, tinyConfig } from "./random_model.ts";
import { Rng } from "./rng.ts";
import { CpuModel, forwardLogits } from "./cpu/forward.ts";
import { tsEngine } from "./cpu/engine_ts.ts";
import { MoaKvCache } from "./cpu/sparse_cache.ts";
import { referenceLogits } from "./cpu/_reference.ts";
import {
  duoBudget,
  duoRules,
  formatDuoGates,
  loadDuoPattern,
  parseDuoGates,
  retrievalHeads,
} from "./duo.ts";
import { assertAllClose, maxAbsDiff } from "./_testing.ts";

const FIXTURE = new URL("./testdata/duo_pattern/", import.meta.url).pathname;

Deno.test("duoBudget() spends density · heads · n entries with as many retrieval heads as fit", () => {
  for (const heads of [8, 32]) {
    for (const n of [1024, 2048, 4096]) {
      for (const d of [0.125, 0.25, 0.5, 0.75]) {
        const sink = 32, minRecent = 64;
        const { retrieval: k, recent } = duoBudget(heads, d, n, sink, minRecent);
        const kept = k * n + (heads - k) * (sink + recent);
        assert.ok(Math.abs(kept / (heads * n) - d) <= 1 / 64, `${heads} ${n} ${d}: ${kept}`);
        assert.ok(recent >= minRecent, "streaming heads keep at least sink + minRecent");
        // one more retrieval head would leave the others less than sink + minRecent
        assert.ok((k + 1) * n + (heads - k - 1) * (sink + minRecent) > d * heads * n);
      }
    }
  }
  assert.deepEqual(duoBudget(8, 1, 512, 32, 64), { retrieval: 8, recent: 0 });
  assert.deepEqual(duoBudget(8, 0.01, 1024, 32, 64), { retrieval: 0, recent: 0 });
  assert.throws(() => duoBudget(8, 0, 64, 4, 8), /density is 0/);
});

Deno.test("retrievalHeads() takes the largest gates, ties to the earlier head", () => {
  const gates = [[0.2, 0.9, 0.5], [0.5, 0.1, 0.9]];
  assert.deepEqual(retrievalHeads(gates, 3), [[false, true, true], [false, false, true]]);
  assert.deepEqual(retrievalHeads(gates, 0), [[false, false, false], [false, false, false]]);
  assert.deepEqual(duoRules(gates, 0.5, 100, 4, 8).betas, [[0, 1, 0], [0, 0, 1]]);
});

Deno.test("DuoAttention rules in the MoA cache match a naive masked float64 forward", async (t) => {
  const config = tinyConfig({ numHeads: 4, numKvHeads: 2 });
  const model = randomModel(config, 11, 8);
  const cpu = new CpuModel(model, tsEngine);
  const r = new Rng(4), N = 120, G = 2;
  const ids = Array.from({ length: N }, () => r.int(0, config.vocabSize - 1));
  const gates = [[0.3, 0.8], [0.6, 0.1]];
  // 4 kv heads at 50% of 120 tokens with sink 4: one retrieval head (layer 0, head 1)
  const plan = duoRules(gates, 0.5, N, 4);
  const { retrieval, recent } = duoBudget(4, 0.5, N, 4, 8);
  assert.deepEqual([retrieval, recent], [1, 36]);
  const full = (l: number, g: number) => l === 0 && g === 1;
  const want = referenceLogits(
    model,
    ids,
    (l, h, i, j) => !full(l, Math.floor(h / G)) && !(j < 4 || i - j < recent),
  );
  for (const steps of [[N], [50, 1, 30]]) {
    await t.step(`prompt in steps ${steps.join("+")}, then decode`, async () => {
      const cache = new MoaKvCache(config, plan, N);
      const out = new Float32Array(N * config.vocabSize);
      const sizes = [...steps];
      for (let at = 0; at < N;) {
        const n = sizes.shift() ?? 1;
        const logits = (await cpu.step([{ cache, tokens: ids.slice(at, at + n) }], "all"))[0]!;
        out.set(logits, at * config.vocabSize);
        at += n;
      }
      assertAllClose(out, want, { atol: 1e-4 }, "logits");
      assert.ok(maxAbsDiff(out, await forwardLogits(model, ids)) > 1e-2, "sparse");
      // at the end: one head of 120 keys and three of 4 + 36
      assert.equal(cache.bytes(), (120 + 3 * 40) * 2 * config.headDim * 4);
    });
  }
});

Deno.test("full_attention_heads.tsv: the published layout read, clipped and written back", async (t) => {
  const config = tinyConfig({ numLayers: 2, numKvHeads: 2 });
  await t.step("a folder with the pattern and its config.json", async () => {
    const p = await loadDuoPattern(FIXTURE, config);
    assert.deepEqual(p, { gates: [[0.8984375, 0], [0.25, 1]], sink: 4, recent: 8 });
    const again = await loadDuoPattern(`${FIXTURE}full_attention_heads.tsv`, config);
    assert.deepEqual(again, p);
  });
  await t.step("formatDuoGates() writes what numpy's savetxt writes, and reads back", async () => {
    const text = await Deno.readTextFile(`${FIXTURE}full_attention_heads.tsv`);
    assert.equal(formatDuoGates([[0.8984375, -1.220703125e-4], [0.25, 1]]), text);
    const g = [[0.123456789, 1e-7], [0, 1]];
    assert.deepEqual(parseDuoGates(formatDuoGates(g), "x.tsv"), g);
  });
  await t.step("bad files are refused with the place named", () => {
    assert.throws(
      () => parseDuoGates("0.5\t0.5\n0.5\tabc\n", "p.tsv"),
      (e) =>
        e instanceof InputError && /^p\.tsv:2:5: expected a number, got 'abc'$/.test(e.message),
    );
    assert.throws(
      () => parseDuoGates("0.5\t0.5\n0.5\n", "p.tsv"),
      /p\.tsv:2: expected 2 values \(as row 1\), got 1/,
    );
    assert.throws(
      () => parseDuoGates("0.5\t0.5\t0.5\n0.5\t0.5\t0.5\n", "p.tsv", config),
      /p\.tsv: expected 2 rows \(one per layer\) of 2 values \(one per kv head\) for this model, got 2 rows of 3/,
    );
    assert.throws(() => parseDuoGates("\n", "p.tsv"), /p\.tsv: no rows/);
  });
  await t.step("a missing file names the file", async () => {
    await assert.rejects(
      () => loadDuoPattern(`${FIXTURE}nope.tsv`),
      /nope\.tsv: cannot read the DuoAttention pattern/,
    );
  });
});
