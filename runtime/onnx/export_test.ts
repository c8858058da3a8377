import assert from "node:assert/strict";
import { forwardLogits } from "../cpu/forward.ts";
import type { Model, ModelConfig } from "../model.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { exportOnnx } from "./export.ts";
import { OrtModel } from "./ort.ts";
import { hasGpu } from "../gpu/device.ts";
import { assertAllClose } from "../_testing.ts";

/** ONNX logits must match the CPU forward pass to this max |difference|. */
const ATOL = 1e-4;
/** RoPE table rows exported for the tests (all prompts stay below it). */
const MAX_POSITIONS = 520;
/** Weight-std multiplier: logits of a few units and peaky attention, not near-uniform noise. */
const SCALE = 8;

function config(over: Partial<ModelConfig> = {}): ModelConfig {
  return tinyConfig({
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    hiddenSize: 64,
    intermediateSize: 172,
    vocabSize: 256,
    ...over,
  });
}

function randomTokens(rng: Rng, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => rng.int(0, vocab - 1));
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Checks ONNX prefill logits of one prompt against `forwardLogits`. */
async function assertPrefillMatches(model: Model, tokens: number[]): Promise<void> {
  const ort = await OrtModel.create(exportOnnx(model, { maxPositions: MAX_POSITIONS }));
  try {
    const { logits, dims } = await ort.prefill([tokens]);
    assert.deepEqual(dims, [1, tokens.length, model.config.vocabSize]);
    const want = await forwardLogits(model, tokens);
    assert.ok(maxAbs(want) > 2, `reference logits too small to test: max ${maxAbs(want)}`);
    assertAllClose(logits, want, { atol: ATOL }, "logits");
  } finally {
    await ort.release();
  }
}

Deno.test("exportOnnx() runs in onnxruntime-web and matches forwardLogits()", async (t) => {
  const rng = new Rng(7);

  await t.step("a 512-token prompt gives the same logits", async () => {
    const model = randomModel(config(), 1, SCALE);
    await assertPrefillMatches(model, randomTokens(rng, 512, 256));
  });

  await t.step(
    "prefill of 400 tokens plus 8 decode steps matches a 408-token forward",
    async () => {
      const model = randomModel(config(), 2, SCALE);
      const V = model.config.vocabSize;
      const seqs = [randomTokens(rng, 408, V), randomTokens(rng, 408, V)];
      const ort = await OrtModel.create(exportOnnx(model, { maxPositions: MAX_POSITIONS }));
      try {
        await ort.prefill(seqs.map((s) => s.slice(0, 400)));
        let last: Float32Array = new Float32Array(0);
        for (let i = 400; i < 408; i++) last = await ort.decode(seqs.map((s) => s[i]!));
        assert.equal(ort.length, 408);
        assert.equal(last.length, 2 * V);
        for (const [b, seq] of seqs.entries()) {
          const want = (await forwardLogits(model, seq)).subarray(407 * V, 408 * V);
          assertAllClose(last.subarray(b * V, (b + 1) * V), want, { atol: ATOL }, `sequence ${b}`);
        }
      } finally {
        await ort.release();
      }
    },
  );

  await t.step(
    "a qwen2-style model (tied embeddings, q/k/v biases) gives the same logits",
    async () => {
      const cfg = config({ modelType: "qwen2", tieWordEmbeddings: true, attentionBias: true });
      const model = randomModel(cfg, 3, SCALE);
      assert.equal(model.weights.lmHead, model.weights.embed);
      assert.ok(model.weights.layers[0]!.bq !== null);
      await assertPrefillMatches(model, randomTokens(rng, 160, 256));
    },
  );

  await t.step("multi-head attention (NKV = NH) with 1 layer gives the same logits", async () => {
    const model = randomModel(config({ numLayers: 1, numKvHeads: 4 }), 4, SCALE);
    await assertPrefillMatches(model, randomTokens(rng, 96, 256));
  });
});

Deno.test("exportOnnx() rejects what it cannot export", async (t) => {
  await t.step("a config with ropeScaling throws naming the field", () => {
    const model = randomModel(config({ ropeScaling: { type: "linear", factor: 2 } }), 0);
    assert.throws(() => exportOnnx(model), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /config\.ropeScaling .*"linear".* not supported .* yet/);
      return true;
    });
  });

  await t.step("numHeads not a multiple of numKvHeads throws a RangeError", () => {
    const model = randomModel(config({ numHeads: 4, numKvHeads: 3 }), 0);
    assert.throws(() => exportOnnx(model), {
      name: "RangeError",
      message: /config\.numHeads \(4\) must be a multiple of config\.numKvHeads \(3\)/,
    });
  });
});

Deno.test("OrtModel rejects batches it cannot run", async (t) => {
  const ort = await OrtModel.create(exportOnnx(randomModel(config(), 5), { maxPositions: 16 }));
  try {
    await t.step("prefill() with unequal lengths throws a RangeError", async () => {
      await assert.rejects(ort.prefill([[1, 2, 3], [4, 5]]), {
        name: "RangeError",
        message: /tokens\[1\] has length 2, expected 3/,
      });
    });

    await t.step("decode() before prefill() throws", async () => {
      await assert.rejects(ort.decode([1]), /call prefill\(\) first/);
    });

    await t.step("decode() with a different batch size throws a RangeError", async () => {
      await ort.prefill([[1, 2], [3, 4]]);
      await assert.rejects(ort.decode([1]), {
        name: "RangeError",
        message: /got 1 tokens, expected one per sequence \(2\)/,
      });
    });
  } finally {
    await ort.release();
  }
});

Deno.test({
  name:
    "OrtModel on onnxruntime-web's WebGPU EP: prefill + decode with the KV cache on the GPU match forwardLogits()",
  ignore: !(await hasGpu()),
}, async () => {
  const rng = new Rng(9);
  const model = randomModel(config(), 3, SCALE);
  const V = model.config.vocabSize;
  const seq = randomTokens(rng, 70, V);
  const ort = await OrtModel.create(exportOnnx(model, { maxPositions: 128 }), {
    executionProvider: "webgpu",
  });
  try {
    await ort.prefill([seq.slice(0, 64)]);
    let last: Float32Array = new Float32Array(0);
    for (let i = 64; i < 70; i++) last = await ort.decode([seq[i]!]);
    const want = (await forwardLogits(model, seq)).subarray(69 * V);
    assertAllClose(last, want, { atol: ATOL }, "logits");
  } finally {
    await ort.release();
  }
});
