import assert from "node:assert/strict";
import { decodeFrom, encodeAs, getGpu, hasGpu, pipeline, prelude } from "./device.ts";

const ignore = !(await hasGpu());

Deno.test({
  name: "pipeline() rethrows a WGSL compile error as file:line:col with the line",
  ignore,
}, async () => {
  const gpu = await getGpu();
  const src = prelude("f32", "f32") +
    "@compute @workgroup_size(1)\nfn main() {\n  let x: u32 = 1.5;\n}\n";
  await assert.rejects(() => pipeline(gpu, "broken.wgsl", src), (e: unknown) => {
    assert.ok(e instanceof SyntaxError);
    assert.match(e.message, /broken\.wgsl:5:\d+: /);
    assert.match(e.message, /let x: u32 = 1\.5;/);
    return true;
  });
});

Deno.test({ name: "pipeline() compiles each source once", ignore }, async () => {
  const gpu = await getGpu();
  const src = prelude("f32", "f32") + "@compute @workgroup_size(1)\nfn main() {}\n";
  assert.equal(await pipeline(gpu, "a.wgsl", src), await pipeline(gpu, "a.wgsl", src));
});

Deno.test("encodeAs()/decodeFrom() round-trip f16 with correct rounding", () => {
  const x = Float32Array.from([0, 1, -2.5, 65504, 1e-8, 0.1, 3.14159]);
  const back = decodeFrom(
    (encodeAs(x, "f16") as Uint16Array).buffer as ArrayBuffer,
    x.length,
    "f16",
  );
  assert.deepEqual([...back.slice(0, 4)], [0, 1, -2.5, 65504]);
  assert.equal(back[4], 0); // below f16's smallest subnormal / 2
  assert.ok(Math.abs(back[5]! - 0.1) < 1e-4 && Math.abs(back[6]! - 3.14159) < 2e-3);
});
