import assert from "node:assert/strict";
import {
  checkReferenceGrid,
  checkSparsePlan,
  elasticSpan,
  type PlanShape,
  referenceCacheSize,
  referenceWindow,
  referenceWindowStart,
  ringCapacity,
  slotsUsed,
  type SpanSemantics,
  type SparsePlan,
  uniformPlan,
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

Deno.test("elasticSpan() clamps α + β·n to [0, n]", () => {
  assert.equal(elasticSpan(-8, 0.5, 40), 12);
  assert.equal(elasticSpan(-2048, 0.25, 4096), 0); // negative: nothing besides the sink
  assert.equal(elasticSpan(8192, 0.5, 100), 100); // past the length: all of it
  assert.equal(elasticSpan(1, 0.3, 10), 4); // fractional parts are kept
});

Deno.test("ringCapacity() is the most window keys a query sees, under either semantics", () => {
  // per-query: ⌈S(maxLength)⌉, at most maxLength − sink
  assert.equal(ringCapacity(-8, 0.5, 100, 4, "per-query"), 42);
  assert.equal(ringCapacity(1, 0.3, 10, 2, "per-query"), 4); // ⌈4⌉
  assert.equal(ringCapacity(1.5, 0.3, 10, 2, "per-query"), 5); // ⌈4.5⌉
  assert.equal(ringCapacity(0, 1, 100, 4, "per-query"), 96); // dense: every key but the sink
  assert.equal(ringCapacity(-50, 0.25, 100, 4, "per-query"), 0);
  // the largest window any query of a length-maxLength sequence has, checked by brute force
  for (const [a, b] of [[-8, 0.5], [3, 0.125], [40, 0], [-1, 1]]) {
    let most = 0;
    for (let i = 0; i < 100; i++) {
      const first = Math.max(4, Math.floor(i - elasticSpan(a!, b!, i + 1)) + 1);
      most = Math.max(most, i + 1 - first);
    }
    assert.equal(ringCapacity(a!, b!, 100, 4, "per-query"), most, `(${a}, ${b})`);
  }
  // reference: the reference window, C − sink
  assert.equal(ringCapacity(0, 0.5, 1000, 64, "reference", 64), 448);
  assert.equal(
    ringCapacity(-1024, 1, 5120, 64, "reference", 64),
    referenceWindow(-1024, 1, 5120, 64, 64),
  );
});

Deno.test("slotsUsed() fills the sink, then the ring up to its capacity", () => {
  assert.equal(slotsUsed(3, 4, 10), 3);
  assert.equal(slotsUsed(9, 4, 10), 9);
  assert.equal(slotsUsed(100, 4, 10), 14);
  assert.equal(slotsUsed(100, 0, 0), 0);
});

Deno.test("uniformPlan() gives every layer and kv head the same rule", () => {
  const p = uniformPlan({ layers: 3, kvHeads: 2 }, -4, 0.5, 4);
  assert.deepEqual(p, {
    sink: 4,
    alphas: [[-4, -4], [-4, -4], [-4, -4]],
    betas: [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],
  });
  p.alphas[0]![0] = 1; // rows are not shared
  assert.equal(p.alphas[1]![0], -4);
});

Deno.test("checkSparsePlan() is the one check of a plan's values", async (t) => {
  const good = (): SparsePlan => ({
    sink: 4,
    alphas: [[8, -4], [0, 16]],
    betas: [[0, 0.5], [1, 0]],
  });
  const shape = { layers: 2, kvHeads: 2 };
  const refuses = (plan: SparsePlan, message: string, s?: PlanShape) =>
    assert.throws(() => checkSparsePlan(plan, "p.json", s), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.equal(e.message, `p.json: ${message}`);
      return true;
    });
  await t.step("good plans pass, with and without the model's shape", () => {
    checkSparsePlan(good(), "p.json");
    checkSparsePlan(good(), "p.json", shape);
    checkSparsePlan({ ...good(), spans: "reference", block: 4 }, "p.json", shape);
  });
  await t.step("the sink, the block and the span semantics", () => {
    refuses({ ...good(), sink: -1 }, "sink: expected an integer ≥ 0, got -1");
    refuses({ ...good(), sink: 1.5 }, "sink: expected an integer ≥ 0, got 1.5");
    refuses({ ...good(), block: 0 }, "block: expected an integer ≥ 1, got 0");
    refuses(
      { ...good(), spans: "per-head" as SpanSemantics },
      'spans: expected one of "per-query", "reference", got "per-head"',
    );
    refuses(
      { ...good(), spans: "reference" },
      "block: expected an integer ≥ 1 (the reference span semantics needs it), got nothing",
    );
    refuses(
      { ...good(), spans: "reference", block: 8 },
      "sink: expected a multiple of block 8 (the reference span semantics keeps whole sink " +
        "blocks), got 4",
    );
  });
  await t.step("the tables' shape", () => {
    refuses(
      { ...good(), alphas: [[8, -4], [0]] },
      'alphas[1]: expected 2 heads like alphas[0], got "1 heads"',
    );
    refuses(
      { ...good(), alphas: [[8, -4, 0], [0, 16, 0]] },
      'alphas[0]: expected 2 heads (one per kv head), got "3 heads"',
      shape,
    );
    refuses(
      { ...good(), alphas: [[8, -4]], betas: [[0, 0.5]] },
      'alphas: expected 2 layers (one per model layer), got "1 layers"',
      shape,
    );
    refuses(
      { ...good(), betas: [[0, 0.5]] },
      'betas: expected 2 layers × 2 heads like alphas, got "1 × 2"',
    );
  });
  await t.step("α finite, β in [0, 1]", () => {
    refuses(
      { ...good(), alphas: [[8, NaN], [0, 16]] },
      "alphas[0][1]: expected a finite number, got NaN",
    );
    refuses(
      { ...good(), alphas: [[8, 4], [Infinity, 16]] },
      "alphas[1][0]: expected a finite number, got Infinity",
    );
    refuses(
      { ...good(), betas: [[0, 0.5], [1.5, 0]] },
      "betas[1][0]: expected a number in [0, 1], got 1.5",
    );
    refuses(
      { ...good(), betas: [[-0.5, 0.5], [1, 0]] },
      "betas[0][0]: expected a number in [0, 1], got -0.5",
    );
  });
});
