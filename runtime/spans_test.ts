import assert from "node:assert/strict";
import {
  checkReferenceGrid,
  referenceCacheSize,
  referenceWindow,
  referenceWindowStart,
} from "./spans.ts";

Deno.test("referenceCacheSize() sizes a head as the reference runtime does", async (t) => {
  // N = 4,096-token prompt + 1,024 new tokens, sink and block 64
  const N = 5120, size = (a: number, b: number) => referenceCacheSize(a, b, N, 64, 64);
  await t.step("⌊α + β·N⌋ rounded up to whole blocks", () => {
    assert.equal(size(-1024, 1), 4096); // already whole blocks
    assert.equal(size(0, 0.3), 1536); // 1,536 exactly
    assert.equal(size(1, 0.3), 1600); // 1,537 → 25 blocks
    assert.equal(size(0.9, 0.3), 1536); // 1,536.9 truncated to 1,536
  });
  await t.step("at least sink + block (the reference's 128)", () => {
    assert.equal(size(0, 0.01), 128); // 51
    assert.equal(size(-4096, 0.125), 128); // negative
  });
  await t.step("at most N, even when N is not whole blocks", () => {
    assert.equal(size(8192, 1), N);
    assert.equal(referenceCacheSize(0, 1, 1000, 64, 64), 1000);
    assert.equal(referenceCacheSize(0, 0, 100, 64, 64), 100); // shorter than the minimum
  });
  await t.step("the window is what the sink leaves", () => {
    assert.equal(referenceWindow(-1024, 1, N, 64, 64), 4096 - 64);
    assert.equal(referenceWindow(0, 0, 50, 64, 64), 0); // the whole sequence is sink
  });
});

Deno.test("referenceWindowStart() gives prefill whole key blocks and decode the ring", () => {
  // W = 128: two blocks of 64
  for (let pos = 64; pos < 1000; pos++) {
    const block = Math.floor(pos / 64);
    assert.equal(referenceWindowStart(pos, 128, 64, 64, false), Math.max(64, (block - 1) * 64));
    assert.equal(referenceWindowStart(pos, 128, 64, 64, true), Math.max(64, pos - 127));
    // prefill never sees more than the ring holds, and at least a block
    const seen = pos + 1 - referenceWindowStart(pos, 128, 64, 64, false);
    assert.ok(seen <= 128 && seen >= Math.min(65, pos + 1 - 64), `${pos}: ${seen}`);
  }
  // a window of N − sink keys that is not whole blocks (the cache holds all N): everything
  const N = 1000, W = referenceWindow(0, 1, N, 64, 64);
  for (let pos = 0; pos < N; pos++) {
    assert.equal(referenceWindowStart(pos, W, 64, 64, false), 64);
  }
});

Deno.test("checkReferenceGrid() names a sink that is not whole blocks", () => {
  checkReferenceGrid(64, 32, "x");
  assert.throws(
    () => checkReferenceGrid(32, 64, "x"),
    /x: .*sink 32 is not a multiple of block 64/,
  );
  assert.throws(() => checkReferenceGrid(32, undefined, "x"), /needs a block size/);
});
