/**
 * The layer-by-layer profile on jax-js's WebGPU backend against WebAssembly (a separate test
 * file: jax-js has one default device per process). Runs on lavapipe in CI; ignored, saying
 * so, where there is no WebGPU adapter.
 */
import assert from "node:assert/strict";
import { initJax } from "./jax_model.ts";
import { layerInfluence } from "./influence.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { hasGpu } from "../gpu/device.ts";
import { assertAllClose } from "../_testing.ts";

const ignore = !(await hasGpu());

Deno.test({
  name: `layerInfluence() on WebGPU gives the WebAssembly tiles and loss${
    ignore ? " (ignored: no WebGPU adapter)" : ""
  }`,
  ignore,
}, async () => {
  const shape = {
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    intermediateSize: 48,
    vocabSize: 64,
    attentionBias: true,
  };
  const T = 40, rng = new Rng(3);
  const sample = {
    tokens: Int32Array.from({ length: T }, () => rng.int(0, 63)),
    targets: Int32Array.from({ length: T }, () => rng.int(0, 63)),
    mask: Float32Array.from({ length: T }, (_, i) => (i > 28 ? 1 : 0)),
  };
  const run = async (device: "wasm" | "webgpu") => {
    await initJax(device);
    // a config object per device: compiled programs and RoPE tables are cached per config
    const model = randomModel(tinyConfig(shape), 9, 6);
    const tiles: Float64Array[] = [];
    const loss = await layerInfluence(model, sample, (l, t) => {
      tiles[l] = Float64Array.from(t.flatMap((x) => [...x]));
    }, { block: 8, queryBlock: 16 });
    return { loss, tiles };
  };
  const cpu = await run("wasm");
  const gpu = await run("webgpu");
  assert.ok(Math.abs(gpu.loss - cpu.loss) < 1e-5 * cpu.loss, `loss ${gpu.loss} vs ${cpu.loss}`);
  cpu.tiles.forEach((want, l) => {
    const scale = Math.max(...want.map(Math.abs));
    assert.ok(scale > 0, "some influence");
    // float32 on both devices, different kernels and summation orders
    assertAllClose(gpu.tiles[l]!, want, { atol: 1e-4 * scale }, `layer ${l}`);
  });
});
