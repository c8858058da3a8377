import assert from "node:assert/strict";
import { InputError } from "../runtime/errors.ts";
import { CpuModel } from "../runtime/cpu/forward.ts";
import { randomModel, tinyConfig } from "../runtime/random_model.ts";
import {
  checkLength,
  checkMemory,
  contextLength,
  EXTRAPOLATION_LIMIT,
  kvCacheBytes,
} from "./limits.ts";

Deno.test("contextLength() is max_position_embeddings, times a linear RoPE factor", () => {
  assert.deepEqual(contextLength(tinyConfig({ maxPositionEmbeddings: 8192 })), {
    tokens: 8192,
    source: "max_position_embeddings 8192 in config.json",
  });
  // Vicuna-7B-v1.5-16k's config: 4,096 positions, linear scaling by 4
  const vicuna16k = tinyConfig({
    maxPositionEmbeddings: 4096,
    ropeScaling: { type: "linear", factor: 4 },
  });
  assert.deepEqual(contextLength(vicuna16k), {
    tokens: 16384,
    source: "max_position_embeddings 4096 × rope_scaling factor 4 in config.json",
  });
  // llama3 scaling: max_position_embeddings is already the extended length
  const llama31 = tinyConfig({
    maxPositionEmbeddings: 131072,
    ropeScaling: {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    },
  });
  assert.equal(contextLength(llama31).tokens, 131072);
});

Deno.test("checkLength() passes the context, warns past it, and refuses far past it", async (t) => {
  const config = tinyConfig({ maxPositionEmbeddings: 8192 });
  await t.step("up to the context: no warning", () => {
    assert.equal(checkLength(config, 1, "lengths[0]: 1 tokens"), null);
    assert.equal(checkLength(config, 8192, "lengths[0]: 8192 tokens"), null);
  });
  await t.step("past it, up to the limit: a warning naming the length and the context", () => {
    assert.equal(
      checkLength(config, 16384, "lengths[0]: 16384 tokens"),
      "warning: lengths[0]: 16384 tokens exceed the model's context of 8192 " +
        "(max_position_embeddings 8192 in config.json): positions past it were not trained, " +
        "so expect degraded results",
    );
    assert.match(checkLength(config, 8193, "x")!, /^warning: x exceed/);
    assert.match(checkLength(config, EXTRAPOLATION_LIMIT * 8192, "x")!, /^warning: /);
  });
  await t.step("beyond the limit: an InputError naming the longest accepted length", () => {
    for (const n of [EXTRAPOLATION_LIMIT * 8192 + 1, 10_000_000]) {
      assert.throws(() => checkLength(config, n, `lengths[2]: ${n} tokens`), (e: unknown) => {
        assert.ok(e instanceof InputError, String(e));
        assert.equal(
          e.message,
          `lengths[2]: ${n} tokens are more than ${EXTRAPOLATION_LIMIT}× the model's context ` +
            `of 8192 (max_position_embeddings 8192 in config.json); the longest length this ` +
            `model accepts is ${EXTRAPOLATION_LIMIT * 8192}`,
        );
        return true;
      });
    }
  });
});

Deno.test("kvCacheBytes() counts what a dense CPU cache holds", async () => {
  const config = tinyConfig(); // 2 layers, 2 kv heads of 16
  // by hand: 2 layers × (K and V) × 2 kv heads × 16 floats × 4 bytes = 512 bytes per token
  assert.equal(kvCacheBytes(config, 100), 51_200);
  const cpu = new CpuModel(randomModel(config, 1));
  const cache = cpu.newCache(8);
  await cpu.step([{ cache, tokens: Array.from({ length: 37 }, (_, i) => 3 + i) }], "none");
  assert.equal(cache.bytes(), kvCacheBytes(config, 37));
});

Deno.test("checkMemory() refuses a KV cache larger than the memory, naming both", () => {
  const config = tinyConfig();
  const gib = 2 ** 30;
  checkMemory(config, 2 * gib / 512, "fits", 2 * gib); // exactly the memory
  assert.throws(
    () => checkMemory(config, 4 * gib / 512, "lengths[0]: throughput at 8M tokens × batch 1", gib),
    (e: unknown) => {
      assert.ok(e instanceof InputError, String(e));
      assert.equal(
        e.message,
        "lengths[0]: throughput at 8M tokens × batch 1 need 4.0 GiB of KV cache (float32), " +
          "more than this machine's 1.0 GiB of memory; use a shorter length or a smaller batch",
      );
      return true;
    },
  );
});
