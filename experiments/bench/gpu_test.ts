import assert from "node:assert/strict";
import { hasGpu } from "../../runtime/gpu/device.ts";
import { benchGpu, benchPlan, gpuReport } from "./gpu.ts";
import { tinyConfig } from "../../runtime/random_model.ts";

Deno.test("benchPlan() keeps the requested density with local and wide heads", () => {
  const c = tinyConfig({ numLayers: 4, numKvHeads: 2 });
  for (const [d, n] of [[0.5, 4096], [0.25, 16384], [0.5, 300]] as const) {
    const p = benchPlan(c, d, n, 64);
    const spans = p.alphas.flat();
    const mean = spans.reduce((a, x) => a + x, 0) / spans.length + p.sink;
    assert.ok(Math.abs(mean / n - d) < 0.01, `density ${mean / n} at ${n}, wanted ${d}`);
    assert.ok(Math.min(...spans) < Math.max(...spans), "heads differ");
    assert.ok(p.betas.flat().every((b) => b === 0));
  }
});

Deno.test({
  name: "the GPU benchmark measures every method and prints ratios to dense (tiny sizes)",
  ignore: !(await hasGpu()),
}, async () => {
  const rows = await benchGpu({
    modelDir: new URL("../../data/models/moa-tiny", import.meta.url).pathname,
    contexts: [128],
    shapes: ["tiny"],
    decode: 2,
    kvCap: 2 ** 20,
    prefillMax: 32,
    ortMaxContext: 0,
  });
  assert.equal(rows.length, 8); // 4 methods × 2 batch modes
  const kv = (m: string, d: number) =>
    rows.find((r) => r.method === m && r.density === d && r.batch_mode === "equal")!.kv_bytes;
  assert.ok(kv("moa", 0.5) < kv("dense", 1));
  assert.ok(kv("moa", 0.25) < kv("moa", 0.5));
  const dense = rows.filter((r) => r.method === "dense");
  assert.ok(dense.every((r) => r.decode_vs_dense === 1));
  assert.ok(rows.every((r) => r.decode_tokens_per_s > 0 && r.prefill_tokens_per_s > 0));
  const maxRows = rows.filter((r) => r.batch_mode === "max");
  for (const r of maxRows) {
    assert.ok(r.kv_bytes <= 2 ** 20, `${r.method}: ${r.kv_bytes} over the cap`);
  }
  const moaMax = maxRows.find((r) => r.method === "moa" && r.density === 0.5)!;
  const denseMax = maxRows.find((r) => r.method === "dense")!;
  assert.ok(moaMax.batch > denseMax.batch, "half the KV fits more sequences");
  assert.match(gpuReport(rows), /moa 50% \/ dense, equal batch: [\d.]+×/);
});
