import assert from "node:assert/strict";
import { csvFormat } from "d3-dsv";
import { readScaleCsv } from "../report/scale.ts";
import {
  growthExponent,
  namesOf,
  SCALE_COLUMNS,
  SCALE_STAGES,
  scaleFits,
  type ScaleRow,
  scaleTargets,
} from "./scale.ts";

const TMP = await Deno.makeTempDir({ prefix: "moa-scale-test-" });

/** A row with every column, the given ones filled in. */
function row(o: Partial<ScaleRow>): ScaleRow {
  const r = Object.fromEntries(SCALE_COLUMNS.map((c) => [c, ""])) as ScaleRow;
  return { ...r, ...o };
}

Deno.test("growthExponent() recovers the power of exact and noisy power laws", () => {
  const xs = [1024, 2048, 4096, 8192];
  assert.ok(Math.abs(growthExponent(xs.map((x) => [x, 3e-9 * x * x]))! - 2) < 1e-12);
  assert.ok(Math.abs(growthExponent(xs.map((x) => [x, 5]))!) < 1e-12);
  // ±5% multiplicative noise moves a 4-point slope over an 8× range by well under 0.1
  const noise = [1.05, 0.95, 1.04, 0.96];
  const e = growthExponent(xs.map((x, i) => [x, 1e-6 * x * noise[i]!]))!;
  assert.ok(Math.abs(e - 1) < 0.1, `slope ${e}`);
  assert.equal(growthExponent([[1024, 1], [1024, 2]]), null, "one distinct x");
  assert.equal(growthExponent([[1024, 1], [2048, 0]]), null, "zero times are left out");
});

Deno.test("scaleFits() fits time in T per model and in parameters per length, decode per token", () => {
  const rows: ScaleRow[] = [];
  for (const [model, params] of [["0.5b", 5e8], ["1b", 1.2e9]] as const) {
    for (const T of [1024, 2048, 4096]) {
      rows.push(
        row({
          model,
          params,
          length: T,
          stage: "profile",
          seconds: 1e-15 * params * T * T,
          peak_rss_bytes: 1e9 + 100 * T,
          base_rss_bytes: 1e9,
        }),
      );
      rows.push(
        row({
          model,
          params,
          length: T,
          stage: "decode_dense",
          seconds: 99,
          per_token_s: 1e-12 * params * T,
        }),
      );
      rows.push(row({ model, params, length: T, stage: "matmul", seconds: 1 }));
    }
  }
  const fits = scaleFits(rows);
  const get = (what: string, over: string, at: string) =>
    fits.find((f) => f.what === what && f.over === over && f.at === at)!;
  assert.ok(Math.abs(get("profile", "length", "1b").exponent - 2) < 1e-9);
  assert.ok(Math.abs(get("profile", "params", "2048").exponent - 1) < 1e-9);
  assert.ok(
    Math.abs(get("decode_dense", "length", "0.5b").exponent - 1) < 1e-9,
    "per token, not the stage's total",
  );
  assert.ok(Math.abs(get("profile memory", "length", "0.5b").exponent - 1) < 1e-9);
  assert.equal(
    fits.filter((f) => f.what === "matmul").length,
    0,
    "matmul is a ceiling, not fitted",
  );
  assert.match(get("profile", "length", "1b").expected, /^2/);
});

Deno.test("scaleTargets() judges the issue's targets from the rows, met and missed", () => {
  const rows = [
    row({ model: "0.5b", length: 2048, stage: "matmul", gflops: 100 }),
    row({ model: "0.5b", length: 2048, stage: "prefill", gflops: 60 }),
    row({ model: "0.5b", length: 8192, stage: "matmul", gflops: 100 }),
    row({ model: "0.5b", length: 8192, stage: "prefill", gflops: 40 }),
    row({ model: "0.5b", length: 8192, stage: "decode_dense", per_token_s: 0.2 }),
    row({ model: "0.5b", length: 8192, stage: "decode_moa50", per_token_s: 0.1 }),
    row({ model: "1b", length: 4096, stage: "profile", peak_rss_bytes: 9e9, base_rss_bytes: 5e9 }),
  ];
  const t = scaleTargets(rows);
  assert.deepEqual(t.map((r) => r.verdict), ["met", "missed", "met", "met"]);
  assert.match(t[1]!.measured!, /40\.0 \/ 100\.0 = 40%/);
  assert.equal(t[2]!.measured, "2.00×");
  assert.equal(t[3]!.measured, "3.73 GiB");
  const over = scaleTargets([
    row({ model: "1b", length: 4096, stage: "profile_jax_wasm", wasm_bytes: 5 * 2 ** 30 }),
  ]);
  assert.deepEqual(over.map((r) => r.verdict), ["missed"]);
});

Deno.test("namesOf() takes known names and names the option otherwise", () => {
  assert.deepEqual(namesOf("stages", "load,decode", SCALE_STAGES), ["load", "decode"]);
  assert.throws(
    () => namesOf("stages", "load,fly", SCALE_STAGES),
    /--stages: expected some of load, .*got 'fly'/,
  );
  assert.throws(() => namesOf("models", ",", ["tiny"]), /--models: expected at least one name/);
});

Deno.test("the report reads the CSV bench scale writes (its columns, a failed row left out)", async () => {
  const rows = [
    row({
      model: "tiny",
      shape: "moa-tiny",
      length: 1024,
      stage: "profile",
      seconds: 2,
      peak_rss_bytes: 3e8,
    }),
    row({
      model: "tiny",
      shape: "moa-tiny",
      length: 2048,
      stage: "profile",
      seconds: 7,
      peak_rss_bytes: 4e8,
    }),
    row({
      model: "1b",
      shape: "llama-3.2-1b",
      length: 8192,
      stage: "failed",
      note: "out of memory",
    }),
  ];
  const path = `${TMP}/scale.csv`;
  await Deno.writeTextFile(path, csvFormat(rows, [...SCALE_COLUMNS]) + "\n");
  const read = (await readScaleCsv(path))!;
  assert.deepEqual(read.map((r) => [r.shape, r.length, r.stage, r.seconds, r.peakBytes]), [
    ["moa-tiny", 1024, "profile", 2, 3e8],
    ["moa-tiny", 2048, "profile", 7, 4e8],
  ]);
});
