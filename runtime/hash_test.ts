import assert from "node:assert/strict";
import { hashOf, modelFingerprint, sha256Hex, stableStringify } from "./hash.ts";

Deno.test("hashOf() ignores key order and stableStringify() sorts keys", async () => {
  assert.equal(
    await hashOf({ b: 1, a: [2, { d: 3, c: 4 }] }),
    await hashOf({ a: [2, { c: 4, d: 3 }], b: 1 }),
  );
  assert.notEqual(await hashOf({ a: 1 }), await hashOf({ a: 2 }));
  assert.equal(stableStringify({ b: 1, a: 2 }), '{"a":2,"b":1}');
});

Deno.test("sha256Hex() gives the FIPS 180-2 test vector for 'abc', from text or bytes", async () => {
  const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  assert.equal(await sha256Hex("abc"), abc);
  assert.equal(await sha256Hex(new Uint8Array([0x61, 0x62, 0x63])), abc);
});

Deno.test("modelFingerprint() follows the config and weights, not other files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "moa_hash_test_" });
  try {
    await Deno.writeTextFile(`${dir}/config.json`, '{"a": 1}');
    await Deno.writeFile(`${dir}/model.safetensors`, new Uint8Array([1, 2, 3]));
    const first = await modelFingerprint(dir);
    assert.match(first, /^[0-9a-f]{16}$/);
    await Deno.writeTextFile(`${dir}/README.md`, "notes");
    assert.equal(await modelFingerprint(dir), first, "a README does not count");
    await Deno.writeFile(`${dir}/model.safetensors`, new Uint8Array([1, 2, 4]));
    const changed = await modelFingerprint(dir);
    assert.notEqual(changed, first, "one weight byte changes it");
    await Deno.writeTextFile(`${dir}/config.json`, '{"a": 2}');
    assert.notEqual(await modelFingerprint(dir), changed, "the config changes it");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
