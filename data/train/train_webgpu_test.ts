/**
 * The trainer with its gradients on jax-js's WebGPU backend against WebAssembly (a separate
 * test file: jax-js has one default device per process). Runs on lavapipe in CI; ignored,
 * saying so, where there is no WebGPU adapter.
 */
import assert from "node:assert/strict";
import { train } from "./train.ts";
import { tinyRecipe } from "./_testing.ts";
import { hasGpu } from "../../runtime/gpu/device.ts";
import { assertAllClose } from "../../runtime/_testing.ts";

const ignore = !(await hasGpu());

Deno.test({
  name: `train() on WebGPU takes the WebAssembly run's steps${
    ignore ? " (ignored: no WebGPU adapter)" : ""
  }`,
  ignore,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lines: string[] = [];
    const run = (device: "wasm" | "webgpu") =>
      train(tinyRecipe(6), {
        out: `${dir}/${device}`,
        device,
        brownDocuments: 4,
        log: (l) => lines.push(l),
      });
    const cpu = await run("wasm");
    const gpu = await run("webgpu");
    // float32 on both devices, different kernels and summation orders; Adam then amplifies
    // small gradient differences a little over 6 steps
    assertAllClose(Float64Array.from(gpu.losses), Float64Array.from(cpu.losses), {
      rtol: 1e-4,
    }, "losses");
    const w = (r: typeof cpu) => Float64Array.from(r.model.weights.layers[0]!.wq);
    const scale = Math.max(...w(cpu).map(Math.abs));
    assertAllClose(w(gpu), w(cpu), { atol: 1e-4 * scale }, "layer 0 wq after 6 steps");
    assert.ok(cpu.losses.at(-1)! < cpu.losses[0]!, "and it learns");
    assert.ok(lines.includes("gradients on jax-js webgpu"), lines.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
