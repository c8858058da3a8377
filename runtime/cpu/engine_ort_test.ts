import assert from "node:assert/strict";
import { OrtEngine } from "./engine_ort.ts";
import { checkEngine } from "./_engine_contract.ts";

Deno.test("OrtEngine keeps the engine contract against float64 loops", async () => {
  const e = await OrtEngine.create(2);
  assert.equal(e.name, `ort-wasm×${e.threads}`);
  await checkEngine(e);
});
