import assert from "node:assert/strict";
import { InputError } from "../runtime/errors.ts";
import {
  bandBlocks,
  candidateRules,
  droppedBlocks,
  droppedInfluence,
  type Rule,
  ruleDensity,
  ruleKeeps,
  ruleSpan,
} from "./rules.ts";

Deno.test("candidateRules()", async (t) => {
  await t.step("gives the reference's 48 rules for 2k/4k/8k profiled, 16k served", () => {
    const rules = candidateRules([2048, 4096, 8192], 16384);
    assert.equal(rules.length, 48);
    const alphas = [...new Set(rules.map((r) => r.alpha))].sort((a, b) => a - b);
    // α = −2048 is on the grid but needs β > 1 to keep anything at 2048, so no rule has it
    assert.deepEqual(alphas, [-1024, 0, 1024, 2048, 3072, 4096, 5120, 6144, 7168, 8192]);
    for (const r of rules) assert.ok(Number.isInteger(r.beta * 8) && r.beta >= 0 && r.beta <= 1);
  });

  await t.step("keeps exactly the grid points that meet the three conditions", () => {
    // independent enumeration of DESIGN.md §3.2's grid and conditions
    const want: string[] = [];
    for (const alpha of [-2048, -1024, 0, 1024, 2048, 3072, 4096, 5120, 6144, 7168, 8192]) {
      for (let k = 0; k <= 8; k++) {
        const beta = k / 8;
        if (
          alpha + 8192 * beta <= 8192 && alpha + 16384 * beta <= 16384 && alpha + 2048 * beta > 0
        ) {
          want.push(`${alpha}/${beta}`);
        }
      }
    }
    const got = candidateRules([4096, 2048, 8192], 16384).map((r) => `${r.alpha}/${r.beta}`);
    assert.deepEqual([...got].sort(), want.sort());
  });

  await t.step("orders rules by span at the serving length", () => {
    const rules = candidateRules([2048, 4096, 8192], 16384);
    const spans = rules.map((r) => r.alpha + r.beta * 16384);
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i - 1]! <= spans[i]!);
    assert.deepEqual(rules[0], { alpha: 1024, beta: 0 }); // 1024 keys at 16k, the narrowest
    assert.deepEqual(rules.at(-1), { alpha: 0, beta: 1 }); // dense
  });

  await t.step("scales α's step to half the shortest profiled length", () => {
    const rules = candidateRules([256, 512], 1024);
    const alphas = [...new Set(rules.map((r) => r.alpha))].sort((a, b) => a - b);
    assert.deepEqual(alphas, [-128, 0, 128, 256, 384, 512]); // −256 needs β > 1
    for (const r of rules) {
      assert.ok(r.alpha + 512 * r.beta <= 512 && r.alpha + 1024 * r.beta <= 1024);
      assert.ok(r.alpha + 256 * r.beta > 0);
    }
  });

  await t.step("rejects bad lengths naming the field", () => {
    assert.throws(() => candidateRules([], 100), InputError);
    assert.throws(
      () => candidateRules([2048, 0], 4096),
      (e: Error) => e instanceof InputError && e.message.includes("profileLengths[1]"),
    );
    assert.throws(
      () => candidateRules([2048, 8192], 4096),
      (e: Error) =>
        e instanceof InputError && e.message.includes("servingLength") &&
        e.message.includes("8192") && e.message.includes("4096"),
    );
  });
});

Deno.test("ruleSpan() and ruleDensity()", async (t) => {
  await t.step("clamp the span to [0, N]", () => {
    assert.equal(ruleSpan({ alpha: -2048, beta: 0.25 }, 4096), 0);
    assert.equal(ruleSpan({ alpha: 8192, beta: 0.5 }, 8192), 8192);
    assert.equal(ruleSpan({ alpha: 1024, beta: 0.125 }, 8192), 2048);
  });

  await t.step("token density equals the kept share of the last query's keys", () => {
    // independent count through ruleKeeps (spans are whole numbers here)
    const rules: Rule[] = [
      { alpha: -64, beta: 0.5 },
      { alpha: 32, beta: 0.25 },
      { alpha: 0, beta: 1 },
      { alpha: 500, beta: 0 },
    ];
    for (const r of rules) {
      for (const n of [256, 512]) {
        let kept = 0;
        for (let j = 0; j < n; j++) kept += ruleKeeps(r, n, 16, n - 1, j) ? 1 : 0;
        assert.equal(ruleDensity(r, n, 16), kept / n, `${JSON.stringify(r)} at ${n}`);
      }
    }
  });

  await t.step("block density counts whole blocks of the last query row", () => {
    for (const r of candidateRules([256, 512, 1024], 2048)) {
      for (const n of [256, 512, 1024, 2048]) {
        const m = droppedBlocks(r, n, 64, 64);
        const nb = m.numBlocks;
        let droppedLast = 0;
        for (let kb = 0; kb < nb; kb++) droppedLast += m.dropped[(nb - 1) * nb + kb]!;
        assert.equal(ruleDensity(r, n, 64, 64), (nb - droppedLast) / nb);
      }
    }
    // hand values: 4096 tokens = 64 blocks; α=1024, β=0.125 → 1536 = 24 blocks + 1 sink block
    assert.equal(ruleDensity({ alpha: 1024, beta: 0.125 }, 4096, 64, 64), 25 / 64);
    // a 10-token window still keeps its own block: max(1, ⌊10/64⌋) = 1, plus the sink block
    assert.equal(ruleDensity({ alpha: 10, beta: 0 }, 640, 64, 64), 2 / 10);
    assert.equal(ruleDensity({ alpha: 0, beta: 1 }, 1000, 64, 64), 1);
  });
});

Deno.test("ruleKeeps()", async (t) => {
  await t.step("keeps the sink and a window that grows with the query's own length", () => {
    const r = { alpha: 0, beta: 0.5 };
    const keptBy = (i: number) =>
      Array.from({ length: 40 }, (_, j) => j).filter((j) => ruleKeeps(r, 40, 2, i, j));
    assert.deepEqual(keptBy(9), [0, 1, 5, 6, 7, 8, 9]); // S(10) = 5
    assert.deepEqual(keptBy(19), [0, 1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]); // S(20) = 10
  });

  await t.step("never keeps future keys and rejects queries outside the sequence", () => {
    assert.equal(ruleKeeps({ alpha: 100, beta: 1 }, 10, 4, 3, 4), false);
    assert.equal(ruleKeeps({ alpha: 100, beta: 1 }, 10, 4, 3, 3), true);
    assert.throws(() => ruleKeeps({ alpha: 1, beta: 0 }, 10, 4, 10, 0), RangeError);
  });
});

Deno.test("droppedBlocks()", async (t) => {
  await t.step("draws the reference's band-plus-sink layout", () => {
    // 8 blocks, span 128 → band of 2 blocks, sink 64 → 1 block; '#' dropped, '.' kept, ' ' future
    const m = droppedBlocks({ alpha: 128, beta: 0 }, 512, 64, 64);
    const rows = Array.from(
      { length: 8 },
      (_, q) =>
        Array.from({ length: 8 }, (_, k) => k > q ? " " : m.dropped[q * 8 + k] ? "#" : ".")
          .join(""),
    );
    assert.deepEqual(rows, [
      ".       ",
      "..      ",
      "...     ",
      ".#..    ",
      ".##..   ",
      ".###..  ",
      ".####.. ",
      ".#####..",
    ]);
  });

  await t.step("widens the band with the length for β > 0", () => {
    const r = { alpha: -256, beta: 0.5 };
    assert.equal(bandBlocks(r, 1024, 64), 4);
    assert.equal(bandBlocks(r, 2048, 64), 12);
    const count = (n: number) =>
      droppedBlocks(r, n, 64, 64, "static").dropped.reduce((a, b) => a + b, 0);
    // Σ over query blocks of max(0, qb − w + 1 − 1)
    const formula = (nb: number, w: number) => {
      let s = 0;
      for (let q = 0; q < nb; q++) s += Math.max(0, q - w);
      return s;
    };
    assert.equal(count(1024), formula(16, 4));
    assert.equal(count(2048), formula(32, 12));
  });

  await t.step("elastic: each query block's band is its last query's window", () => {
    const r = { alpha: -256, beta: 0.5 };
    // query block q ends at length 64(q + 1): span max(0, −256 + 32(q + 1)), in blocks rounded
    // up (the last query reaches into that block), 0 while the span is 0
    const formula = (nb: number) => {
      let s = 0;
      for (let q = 0; q < nb; q++) {
        const w = Math.ceil(Math.max(0, -256 + 32 * (q + 1)) / 64);
        s += Math.max(0, q - w); // key blocks 1 … q − w (block 0 is the sink)
      }
      return s;
    };
    for (const n of [1024, 2048]) {
      const m = droppedBlocks(r, n, 64, 64, "elastic");
      assert.equal(m.dropped.reduce((a, b) => a + b, 0), formula(n / 64));
      // never less than the static band (the default) drops, for a rule that grows with n
      assert.deepEqual(droppedBlocks(r, n, 64, 64), droppedBlocks(r, n, 64, 64, "static"));
      const st = droppedBlocks(r, n, 64, 64).dropped;
      st.forEach((d, k) => assert.ok(m.dropped[k]! >= d, `pair ${k}`));
    }
    // a static window is the same in both modes once its band fits
    const fixed = { alpha: 128, beta: 0 };
    assert.deepEqual(
      droppedBlocks(fixed, 512, 64, 64, "elastic").dropped.slice(2 * 8),
      droppedBlocks(fixed, 512, 64, 64, "static").dropped.slice(2 * 8),
    );
  });

  await t.step("droppedInfluence() sums influence over exactly the dropped pairs", () => {
    const n = 640;
    const nb = 10;
    const influence = Float64Array.from({ length: nb * nb }, (_, k) => (k * 37) % 11 + 0.5);
    for (const r of candidateRules([128, 256], 640)) {
      for (const mode of ["static", "elastic", "reference"] as const) {
        const m = droppedBlocks(r, n, 64, 64, mode);
        let want = 0;
        m.dropped.forEach((d, k) => (want += d * influence[k]!));
        assert.ok(Math.abs(droppedInfluence(r, n, 64, 64, influence, mode) - want) < 1e-9);
      }
    }
    assert.throws(() => droppedInfluence({ alpha: 64, beta: 0 }, n, 64, 64, [1, 2]), RangeError);
  });
});

Deno.test("droppedTokenInfluence() sums exactly the entries ruleKeeps() drops", async () => {
  const { droppedTokenInfluence, ruleKeeps } = await import("./rules.ts");
  const n = 37, sink = 3;
  const inf = Float64Array.from({ length: n * n }, (_, k) => ((k * 7919) % 101) / 100);
  for (const rule of [{ alpha: 4, beta: 0 }, { alpha: -2, beta: 0.5 }, { alpha: 0, beta: 0.25 }]) {
    let want = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) if (!ruleKeeps(rule, n, sink, i, j)) want += inf[i * n + j]!;
    }
    const got = droppedTokenInfluence(rule, n, sink, inf);
    if (Math.abs(got - want) > 1e-9) throw new Error(`${JSON.stringify(rule)}: ${got} ≠ ${want}`);
  }
});
