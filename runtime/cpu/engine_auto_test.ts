import assert from "node:assert/strict";
import type { Engine } from "./engine.ts";
import { AutoEngine, ENGINE_CHOICES, engineOf, fastEngine } from "./engine_auto.ts";
import { tsEngine } from "./engine_ts.ts";
import { checkEngine } from "./_engine_contract.ts";

/** An engine that records its calls and does the work of the TypeScript engine. */
function counting(name: string): Engine & { calls: string[] } {
  const calls: string[] = [];
  return {
    name,
    calls,
    matmulT: (...a) => (calls.push("matmulT"), tsEngine.matmulT(...a)),
    matmul: (...a) => (calls.push("matmul"), tsEngine.matmul(...a)),
    attention: (...a) => (calls.push("attention"), tsEngine.attention(...a)),
    rangeAttention: (...a) => (calls.push("rangeAttention"), tsEngine.rangeAttention(...a)),
    prepare: (m) => (calls.push("prepare"), tsEngine.prepare(m)),
  };
}

Deno.test("AutoEngine sends calls of at least `threshold` multiply-adds to the large engine", async () => {
  const small = counting("small"), large = counting("large");
  const e = new AutoEngine(small, large, 64);
  assert.equal(e.name, "large+small");
  const out = new Float32Array(16);
  await e.matmulT(out, new Float32Array(12), new Float32Array(15), 4, 3, 5); // 60 < 64
  await e.matmul(out, new Float32Array(16), new Float32Array(16), 4, 4, 4); // 64
  const dims = { T: 1, S: 4, NH: 2, NKV: 1, HS: 8, first: 3 }; // 1·2·4·8 = 64
  await e.attention(
    new Float32Array(16),
    new Float32Array(16),
    new Float32Array(32),
    new Float32Array(32),
    dims,
  );
  assert.deepEqual(small.calls, ["matmulT"]);
  assert.deepEqual(large.calls, ["matmul", "attention"]);
  await checkEngine(e); // routed calls still compute the right thing
});

Deno.test("fastEngine() is one engine for the process and keeps the contract", async () => {
  const e = await fastEngine();
  assert.equal(await fastEngine(), e);
  // MOA_CPU_ENGINE forces one (the suite runs with ort-wasm too); otherwise the native engine
  // wherever onnxruntime-node loads
  const forced = Deno.env.get("MOA_CPU_ENGINE");
  const native = await nativeAvailable();
  const want = forced === "ts"
    ? /^ts$/
    : forced === "ort-wasm" || !native
    ? /^ort-wasm×\d+\+ts$/
    : /^ort-native×\d+\+ts$/;
  assert.match(e.name, want);
  await checkEngine(e);
});

Deno.test("engineOf() starts each engine a forced choice names; another name is refused", async (t) => {
  for (const choice of ENGINE_CHOICES) {
    await t.step(choice, async (t) => {
      if (choice === "native" && !(await nativeAvailable())) {
        t.step({
          name: "ignored: onnxruntime-node does not load here",
          ignore: true,
          fn: () => {},
        });
        return;
      }
      const e = await engineOf(choice);
      assert.ok(e.name.startsWith(choice === "native" ? "ort-native" : choice), e.name);
      await checkEngine(e);
    });
  }
  await t.step("MOA_CPU_ENGINE=gpu is an error that names the choices", async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { fastEngine } from "${new URL("./engine_auto.ts", import.meta.url)}";
        await fastEngine();`,
      ],
      env: { MOA_CPU_ENGINE: "gpu" },
      stderr: "piped",
    }).output();
    assert.equal(out.success, false);
    assert.match(
      new TextDecoder().decode(out.stderr),
      /MOA_CPU_ENGINE is 'gpu'; expected one of native, ort-wasm, ts/,
    );
  });
});

/** Whether onnxruntime-node loads here. */
async function nativeAvailable(): Promise<boolean> {
  try {
    await (await import("./engine_native.ts")).NativeEngine.create(1);
    return true;
  } catch {
    return false;
  }
}
