import assert from "node:assert/strict";
import type { Gpu } from "./device.ts";
import { missingStorage, storageStep } from "./_testing.ts";

/** A device description without a device: only `name` and `f16` are read. */
const fake = (f16: boolean) => ({ name: "llvmpipe (LLVM 15.0.6, 256 bits)", f16 }) as Gpu;

Deno.test("storageStep() ignores an f16 step where the adapter lacks shader-f16, saying so", () => {
  const fn = () => {};
  const step = storageStep(fake(false), ["f32", "f16"], "logits, f16 weights", fn);
  assert.equal(step.ignore, true);
  assert.equal(
    step.name,
    'logits, f16 weights (ignored: adapter "llvmpipe (LLVM 15.0.6, 256 bits)" lacks shader-f16)',
  );
  assert.equal(missingStorage(fake(false), "f32"), null);
});

Deno.test("storageStep() runs f16 steps where the adapter has shader-f16, and f32 steps anywhere", () => {
  const fn = () => {};
  assert.deepEqual(storageStep(fake(true), ["f16"], "a", fn), { name: "a", fn });
  assert.deepEqual(storageStep(fake(false), ["f32"], "b", fn), { name: "b", fn });
  assert.equal(missingStorage(fake(true), "f16"), null);
});
