import assert from "node:assert/strict";
import { tinyConfig } from "../../runtime/random_model.ts";
import { type CpuBenchRow, cpuReport, cpuTargets, prefillFlops, PYTORCH_CPU } from "./cpu.ts";

/** A row with the speeds given and the rest zero. */
function row(engine: string, method: string, context: number, prefill: number, decode: number) {
  return {
    model: "moa-tiny",
    engine,
    method,
    context,
    prefill_tokens_per_s: prefill,
    prefill_gflops: 0,
    matmul_gflops: 1,
    prefill_vs_matmul: 0,
    decode_tokens_per_s: decode,
    kv_bytes_per_step: 0,
    kv_read_gbps: 0,
    copy_gbps: 1,
    kv_read_vs_copy: 0,
  } satisfies CpuBenchRow;
}

Deno.test("cpuTargets() divides the default engine's figures by PyTorch's and by dense", () => {
  const rows = [
    row("fast", "dense", 1024, 41000, 1500),
    row("fast", "dense", 4096, 10000, 900),
    row("fast", "moa 50%", 4096, 9000, 1800),
    row("slow", "dense", 1024, 1, 1),
  ];
  const t = cpuTargets(rows, "fast");
  assert.deepEqual(t.map((x) => x.target), [
    "prefill 1024 tok/s ≥ 0.7× PyTorch",
    "prefill 4096 tok/s ≥ 0.7× PyTorch",
    "decode 1024 tok/s ≥ 1× PyTorch",
    "decode 4096 tok/s ≥ 1× PyTorch",
    "moa 50% decode ≥ 1.6× dense at 4096",
  ]);
  assert.equal(t[0]!.ratio, 41000 / PYTORCH_CPU.prefill[1024]);
  assert.deepEqual(t.map((x) => x.met), [true, false, true, false, true]);
  assert.equal(t[4]!.ratio, 2);
  assert.match(
    cpuReport(rows, "fast"),
    /moa 50% decode ≥ 1\.6× dense at 4096 +1800 +900 +2\.00 +met/,
  );
});

Deno.test("prefillFlops() counts the linear layers, the causal triangle and one row of logits", () => {
  const c = tinyConfig({
    hiddenSize: 8,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 4,
    intermediateSize: 12,
  });
  const T = 3, L = c.numLayers;
  // per token per layer: q and o 8·8, k and v 8·4, gate/up/down 3·8·12 multiply-adds
  const linear = 2 * T * L * (2 * 8 * 8 + 2 * 8 * 4 + 3 * 8 * 12);
  // QKᵀ and PV: 2 heads × 4 wide × (1 + 2 + 3) pairs, two products, per layer
  const attention = 2 * L * 2 * (2 * 4 * 6);
  assert.equal(prefillFlops(c, T), linear + attention + 2 * 8 * c.vocabSize);
});
