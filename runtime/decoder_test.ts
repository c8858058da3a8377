import assert from "node:assert/strict";
import { cpuDecoder, sessionDecoder } from "./decoder.ts";
import { byteModel } from "./_testing.ts";
import { generateGreedy } from "./cpu/generate.ts";
import { cacheFactory } from "./cpu/method_cache.ts";
import { H2oKvCache } from "./cpu/sparse_cache.ts";
import { hasGpu } from "./gpu/device.ts";
import { GpuModel } from "./gpu/model.ts";
import type { MethodSpec } from "./methods.ts";
import type { Session } from "./session.ts";

const { cpu, tok } = byteModel();
const prompts = [tok.encode("line 7: value"), tok.encode("abc")];
const config = cpu.model.config;

/** A session of the byte model, on the GPU when `gpu` is given. */
const session = (gpu: GpuModel | null): Session => ({
  dir: "",
  fingerprint: "",
  cpu,
  tokenizer: tok,
  bos: null,
  stopTokens: [],
  backend: gpu ? "webgpu" : "cpu",
  gpu,
  device: "test",
});

Deno.test("cpuDecoder() generates what generateGreedy does with the method's caches", async () => {
  const spec: MethodSpec = { method: "streaming", density: 0.5, sink: 2 };
  const newCache = cacheFactory(cpu, spec);
  const d = cpuDecoder(cpu, newCache);
  assert.equal(d.backend, "cpu");
  const want = await generateGreedy(cpu, prompts, { maxNewTokens: 6, newCache });
  assert.deepEqual(await d.generate(prompts, 6, []), want);
});

Deno.test("cpuDecoder().time() prefills, decodes every sequence and reports the caches' bytes", async () => {
  const made: H2oKvCache[] = [];
  const newCache = (n: number) => {
    const c = new H2oKvCache(config, { density: 0.5, length: n });
    made.push(c);
    return c;
  };
  const t = await cpuDecoder(cpu, newCache).time(prompts, 5);
  assert.equal(made.length, 2);
  assert.deepEqual(made.map((c) => c.length), prompts.map((p) => p.length + 5));
  assert.equal(t.kvBytes, made.reduce((a, c) => a + c.bytes(), 0));
  assert.ok(t.prefillS >= 0 && t.decodeS >= 0);
  // a dense cache holds every token: 2 layers × K and V × kv heads × tokens × head size × 4
  const dense = await cpuDecoder(cpu, (n) => cpu.newCache(n)).time(prompts, 5);
  const tokens = prompts.reduce((a, p) => a + p.length + 5, 0);
  assert.equal(dense.kvBytes, 2 * 2 * config.numKvHeads * tokens * config.headDim * 4);
});

Deno.test("sessionDecoder() runs every method on the CPU in a CPU session", async () => {
  const s = session(null);
  const plan = { sink: 2, alphas: [[4, 4], [8, 8]], betas: [[0.5, 0.5], [0, 0]] };
  for (
    const spec of [
      { method: "dense", density: 1, sink: 0 },
      { method: "h2o", density: 0.5, sink: 0 },
      { method: "moa-layer", density: 0.5, sink: 2, plan },
    ] satisfies MethodSpec[]
  ) {
    const d = sessionDecoder(s, spec);
    assert.equal(d.backend, "cpu", spec.method);
    const want = await generateGreedy(cpu, prompts, {
      maxNewTokens: 4,
      newCache: cacheFactory(cpu, spec),
    });
    assert.deepEqual(await d.generate(prompts, 4, []), want, spec.method);
  }
  assert.throws(() => sessionDecoder(s, { method: "moa", density: 0.5, sink: 2 }), /needs a plan/);
});

Deno.test({
  name: "sessionDecoder() takes the GPU for dense, moa and streaming, and the CPU for h2o",
  ignore: !(await hasGpu()),
  async fn() {
    const gpu = await GpuModel.load(cpu.model);
    try {
      const s = session(gpu);
      const backend = (spec: MethodSpec) => sessionDecoder(s, spec).backend;
      assert.equal(backend({ method: "dense", density: 1, sink: 0 }), "webgpu");
      assert.equal(backend({ method: "streaming", density: 0.5, sink: 2 }), "webgpu");
      assert.equal(backend({ method: "h2o", density: 0.5, sink: 0 }), "cpu");
      const dense = sessionDecoder(s, { method: "dense", density: 1, sink: 0 });
      const want = await generateGreedy(cpu, prompts, { maxNewTokens: 4 });
      assert.deepEqual(await dense.generate(prompts, 4, []), want);
    } finally {
      gpu.destroy();
    }
  },
});
