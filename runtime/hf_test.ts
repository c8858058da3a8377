import assert from "node:assert/strict";
import { join } from "node:path";
import { configToJson } from "./config.ts";
import { InputError } from "./errors.ts";
import { checkModelFolder, loadModel, saveModel, writeModel } from "./hf.ts";
import {
  isHalf,
  type LayerWeights,
  type Model,
  modelBytes,
  type ModelConfig,
  widenModel,
} from "./model.ts";
import { randomModel, tinyConfig } from "./random_model.ts";
import { parseSafetensors } from "./safetensors.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "moa_hf_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function listDir(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** Every weight array of a model, by a readable name. */
function arrays(m: Model): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  out.set("embed", m.weights.embed);
  out.set("finalNorm", m.weights.finalNorm);
  out.set("lmHead", m.weights.lmHead);
  m.weights.layers.forEach((layer, l) => {
    for (const [k, v] of Object.entries(layer) as [keyof LayerWeights, Float32Array | null][]) {
      if (v !== null) out.set(`layers[${l}].${k}`, v);
    }
  });
  return out;
}

/** Same config, same set of arrays, every element within `tol(want)` of the original. */
function assertWeightsClose(got: Model, want: Model, tol: (x: number) => number): void {
  assert.deepEqual(got.config, want.config);
  const g = arrays(got);
  const w = arrays(want);
  assert.deepEqual([...g.keys()].sort(), [...w.keys()].sort());
  for (const [name, ref] of w) {
    const a = g.get(name)!;
    assert.equal(a.length, ref.length, name);
    for (let i = 0; i < ref.length; i++) {
      const err = Math.abs(a[i]! - ref[i]!);
      if (!(err <= tol(ref[i]!))) {
        assert.fail(`${name}[${i}]: got ${a[i]}, want ${ref[i]} (error ${err} > ${tol(ref[i]!)})`);
      }
    }
  }
  for (let l = 0; l < want.weights.layers.length; l++) {
    for (const k of ["bq", "bk", "bv"] as const) {
      assert.equal(got.weights.layers[l]![k] === null, want.weights.layers[l]![k] === null);
    }
  }
}

async function rejects(p: Promise<unknown>, ...parts: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${e}`);
    for (const part of parts) {
      assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${part}`);
    }
    return true;
  });
}

async function writeConfig(dir: string, c: ModelConfig): Promise<void> {
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(configToJson(c)));
}

/**
 * Rewrites `model.safetensors` by hand (not with the encoder under test): `edit` may drop or
 * change entries; each keeps its raw bytes unless it supplies new ones.
 */
async function rewriteWeights(
  dir: string,
  edit: (
    entries: Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>,
  ) => void,
): Promise<void> {
  const path = join(dir, "model.safetensors");
  const parsed = parseSafetensors(await Deno.readFile(path), path);
  const entries = new Map(
    [...parsed].map(([k, v]) => [k, { dtype: v.dtype as string, shape: v.shape, bytes: v.data }]),
  );
  edit(entries);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, e] of entries) {
    header[name] = {
      dtype: e.dtype,
      shape: e.shape,
      data_offsets: [offset, offset + e.bytes.length],
    };
    offset += e.bytes.length;
  }
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let pos = 8 + h.length;
  for (const e of entries.values()) {
    out.set(e.bytes, pos);
    pos += e.bytes.length;
  }
  await Deno.writeFile(path, out);
}

Deno.test("saveModel() and loadModel() round-trip a model", async (t) => {
  const model = randomModel(tinyConfig(), 1);

  await t.step("F32 is exact", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model);
      assert.deepEqual(listDir(dir), ["config.json", "model.safetensors"]);
      const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
      assert.equal(config.torch_dtype, "float32");
      assert.deepEqual(config.architectures, ["LlamaForCausalLM"]);
      assertWeightsClose(await loadModel(dir), model, () => 0);
    });
  });

  // Round to nearest: |error| <= half an ulp = 2^-11 |x| for normal F16, plus at most 2^-25
  // (half the smallest subnormal) below 2^-14. The values must also equal Math.f16round(x).
  await t.step("F16 is within 2^-11·|x| + 2^-25 and equals Math.f16round", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model, { dtype: "F16" });
      const loaded = await loadModel(dir);
      assertWeightsClose(loaded, model, (x) => 2 ** -11 * Math.abs(x) + 2 ** -25);
      const f16round = (Math as unknown as { f16round(x: number): number }).f16round;
      for (const [name, ref] of arrays(model)) {
        const got = arrays(loaded).get(name)!;
        for (let i = 0; i < ref.length; i++) {
          if (got[i] !== f16round(ref[i]!)) {
            assert.fail(`${name}[${i}]: ${got[i]} vs f16round ${f16round(ref[i]!)}`);
          }
        }
      }
      const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
      assert.equal(config.torch_dtype, "float16");
    });
  });

  // BF16 keeps 8 significant bits: |error| <= 2^-8 |x| (half an ulp) for these normal values.
  await t.step("BF16 is within 2^-8·|x|", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model, { dtype: "BF16" });
      const loaded = await loadModel(dir);
      assertWeightsClose(loaded, model, (x) => 2 ** -8 * Math.abs(x));
      // And it did round: some values changed.
      assert.notDeepEqual(loaded.weights.embed, model.weights.embed);
      const bytes = await Deno.readFile(join(dir, "model.safetensors"));
      const tensors = parseSafetensors(bytes, "model.safetensors");
      assert.equal(tensors.get("model.embed_tokens.weight")!.dtype, "BF16");
    });
  });

  await t.step("writes Hugging Face tensor names and shapes", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model);
      const tensors = parseSafetensors(await Deno.readFile(join(dir, "model.safetensors")), "m");
      const shapes = Object.fromEntries([...tensors].map(([k, v]) => [k, v.shape]));
      assert.deepEqual(shapes["model.embed_tokens.weight"], [256, 64]);
      assert.deepEqual(shapes["model.layers.1.self_attn.q_proj.weight"], [64, 64]);
      assert.deepEqual(shapes["model.layers.1.self_attn.k_proj.weight"], [32, 64]);
      assert.deepEqual(shapes["model.layers.1.self_attn.v_proj.weight"], [32, 64]);
      assert.deepEqual(shapes["model.layers.1.self_attn.o_proj.weight"], [64, 64]);
      assert.deepEqual(shapes["model.layers.0.mlp.gate_proj.weight"], [172, 64]);
      assert.deepEqual(shapes["model.layers.0.mlp.up_proj.weight"], [172, 64]);
      assert.deepEqual(shapes["model.layers.0.mlp.down_proj.weight"], [64, 172]);
      assert.deepEqual(shapes["model.layers.0.input_layernorm.weight"], [64]);
      assert.deepEqual(shapes["model.layers.0.post_attention_layernorm.weight"], [64]);
      assert.deepEqual(shapes["model.norm.weight"], [64]);
      assert.deepEqual(shapes["lm_head.weight"], [256, 64]);
      assert.equal(tensors.size, 3 + 2 * 9);
      // Row-major (out, in): element [r][c] of q_proj is wq[r * C + c].
      const q = new Float32Array(
        tensors.get("model.layers.1.self_attn.q_proj.weight")!.data.slice().buffer,
      );
      assert.equal(q[5 * 64 + 7], model.weights.layers[1]!.wq[5 * 64 + 7]);
    });
  });

  await t.step("a sharded save loads back the same", async () => {
    await withDir(async (dir) => {
      const max = 50_000;
      await saveModel(dir, model, { maxShardBytes: max });
      const files = listDir(dir);
      const shards = files.filter((f) => f.startsWith("model-"));
      assert.ok(shards.length > 2, `${shards.length} shards`);
      const n = String(shards.length).padStart(5, "0");
      shards.forEach((f, i) =>
        assert.equal(f, `model-${String(i + 1).padStart(5, "0")}-of-${n}.safetensors`)
      );
      assert.deepEqual(files, ["config.json", ...shards, "model.safetensors.index.json"]);

      const index = JSON.parse(await Deno.readTextFile(join(dir, "model.safetensors.index.json")));
      let total = 0;
      const seen = new Set<string>();
      for (const f of shards) {
        const tensors = parseSafetensors(await Deno.readFile(join(dir, f)), f);
        let bytes = 0;
        for (const [name, v] of tensors) {
          assert.equal(index.weight_map[name], f, name);
          seen.add(name);
          bytes += v.data.length;
        }
        assert.ok(bytes <= max || tensors.size === 1, `${f} holds ${bytes} bytes`);
        total += bytes;
      }
      assert.equal(index.metadata.total_size, total);
      assert.deepEqual(Object.keys(index.weight_map).sort(), [...seen].sort());
      assertWeightsClose(await loadModel(dir), model, () => 0);
    });
  });

  await t.step("resaving replaces old weight files and keeps other files", async () => {
    await withDir(async (dir) => {
      await Deno.writeTextFile(join(dir, "tokenizer.json"), "{}");
      await saveModel(dir, model);
      await saveModel(dir, model, { maxShardBytes: 100_000, dtype: "F16" });
      assert.ok(!listDir(dir).includes("model.safetensors"));
      assert.ok(listDir(dir).includes("tokenizer.json"));
      await saveModel(dir, model, { maxShardBytes: 20_000 });
      const shards = listDir(dir).filter((f) => f.startsWith("model-"));
      const n = String(shards.length).padStart(5, "0");
      assert.ok(shards.every((f) => f.endsWith(`-of-${n}.safetensors`)), shards.join(" "));
      assertWeightsClose(await loadModel(dir), model, () => 0);
      await saveModel(dir, model, { dtype: "BF16" });
      assert.deepEqual(listDir(dir), ["config.json", "model.safetensors", "tokenizer.json"]);
      assertWeightsClose(await loadModel(dir), model, (x) => 2 ** -8 * Math.abs(x));
    });
  });

  await t.step("a model folder that does not exist yet is created", async () => {
    await withDir(async (dir) => {
      const sub = join(dir, "a", "b");
      await saveModel(sub, model);
      assertWeightsClose(await loadModel(sub), model, () => 0);
    });
  });
});

Deno.test("loadModel() handles tied embeddings and biases", async (t) => {
  await t.step("tied embeddings: no lm_head.weight written, lmHead is embed", async () => {
    const model = randomModel(tinyConfig({ tieWordEmbeddings: true }), 2);
    assert.equal(model.weights.lmHead, model.weights.embed);
    await withDir(async (dir) => {
      await saveModel(dir, model, { dtype: "F16" });
      const tensors = parseSafetensors(await Deno.readFile(join(dir, "model.safetensors")), "m");
      assert.ok(!tensors.has("lm_head.weight"));
      const loaded = await loadModel(dir);
      assert.equal(loaded.weights.lmHead, loaded.weights.embed);
      assert.equal(loaded.config.tieWordEmbeddings, true);
    });
  });

  await t.step("tied embeddings: a stored lm_head.weight is ignored", async () => {
    const untied = randomModel(tinyConfig(), 3);
    await withDir(async (dir) => {
      await saveModel(dir, untied);
      await writeConfig(dir, tinyConfig({ tieWordEmbeddings: true }));
      const loaded = await loadModel(dir);
      assert.equal(loaded.weights.lmHead, loaded.weights.embed);
      assert.deepEqual(loaded.weights.embed, untied.weights.embed);
    });
  });

  await t.step("qwen2 q/k/v biases round-trip", async () => {
    const config = tinyConfig({ modelType: "qwen2", attentionBias: true });
    const model = randomModel(config, 4);
    await withDir(async (dir) => {
      await saveModel(dir, model);
      const json = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
      assert.deepEqual(json.architectures, ["Qwen2ForCausalLM"]);
      const tensors = parseSafetensors(await Deno.readFile(join(dir, "model.safetensors")), "m");
      assert.deepEqual(tensors.get("model.layers.1.self_attn.q_proj.bias")!.shape, [64]);
      assert.deepEqual(tensors.get("model.layers.1.self_attn.k_proj.bias")!.shape, [32]);
      assert.deepEqual(tensors.get("model.layers.1.self_attn.v_proj.bias")!.shape, [32]);
      const loaded = await loadModel(dir);
      assertWeightsClose(loaded, model, () => 0);
      assert.deepEqual(loaded.weights.layers[1]!.bk, model.weights.layers[1]!.bk);
    });
  });
});

Deno.test("loadModel() and checkModelFolder() reject bad model folders alike", async (t) => {
  const model = randomModel(tinyConfig(), 5);
  /** Both reject the folder with an InputError whose message has every part. */
  const rejectsBoth = async (dir: string, ...parts: string[]) => {
    await rejects(loadModel(dir), ...parts);
    await rejects(checkModelFolder(dir), ...parts);
  };

  await t.step("a good folder passes the check, which returns loadModel's config", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model, { dtype: "BF16" });
      assert.deepEqual(await checkModelFolder(dir), (await loadModel(dir)).config);
      await saveModel(dir, model, { maxShardBytes: 50_000 });
      assert.deepEqual(await checkModelFolder(dir), model.config);
    });
  });

  await t.step("a missing folder", async () => {
    await withDir(async (dir) => {
      const missing = join(dir, "nope");
      await rejectsBoth(missing, `${missing}: model folder not found`);
    });
  });

  await t.step("a file instead of a folder", async () => {
    await withDir(async (dir) => {
      const file = join(dir, "f");
      await Deno.writeTextFile(file, "");
      await rejectsBoth(file, `${file}: expected a model folder`);
    });
  });

  await t.step("a missing config.json", async () => {
    await withDir(async (dir) => {
      await rejectsBoth(dir, `${join(dir, "config.json")}: not found`);
    });
  });

  await t.step("a config.json that is not JSON", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model);
      await Deno.writeTextFile(join(dir, "config.json"), "{ hidden_size: 4 ");
      await rejectsBoth(dir, `${join(dir, "config.json")}: invalid JSON`);
    });
  });

  await t.step("an unsupported model_type", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model);
      const json = configToJson(model.config);
      await Deno.writeTextFile(
        join(dir, "config.json"),
        JSON.stringify({ ...json, model_type: "gemma" }),
      );
      await rejectsBoth(
        dir,
        `${join(dir, "config.json")}: model_type`,
        '"gemma"',
        "llama, mistral, qwen2",
      );
    });
  });

  await t.step("no weights", async () => {
    await withDir(async (dir) => {
      await writeConfig(dir, model.config);
      await Deno.writeFile(join(dir, "pytorch_model.bin"), new Uint8Array(1));
      await rejectsBoth(
        dir,
        `${dir}: no model.safetensors or model.safetensors.index.json`,
        "pytorch_model.bin",
      );
    });
  });

  await t.step("a truncated model.safetensors", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model);
      const path = join(dir, "model.safetensors");
      const bytes = await Deno.readFile(path);
      await Deno.writeFile(path, bytes.subarray(0, bytes.length - 100));
      await rejectsBoth(
        dir,
        `${path}: tensor "model.norm.weight" ends at byte`,
        "but data area has",
      );
    });
  });

  await t.step("a header length beyond the file", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model);
      const path = join(dir, "model.safetensors");
      const bytes = await Deno.readFile(path);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.length), true);
      await Deno.writeFile(path, bytes);
      await rejectsBoth(
        dir,
        `${path}: header declares ${bytes.length} bytes but the file has only ${bytes.length - 8}`,
      );
    });
  });

  await t.step("a header whose byte length disagrees with the shape", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model);
      await rewriteWeights(dir, (m) => {
        const e = m.get("model.norm.weight")!;
        m.set("model.norm.weight", { ...e, bytes: e.bytes.subarray(0, 128) });
      });
      const path = join(dir, "model.safetensors");
      await rejectsBoth(
        dir,
        `${path}: tensor "model.norm.weight": data_offsets`,
        "span 128 bytes but shape [64] of F32 needs 256",
      );
    });
  });

  await t.step("a tensor whose shape disagrees with config.json", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, randomModel(tinyConfig({ numKvHeads: 4 }), 6));
      await writeConfig(dir, tinyConfig({ numKvHeads: 2 }));
      await rejectsBoth(
        dir,
        `${
          join(dir, "model.safetensors")
        }: model.layers.0.self_attn.k_proj.weight has shape [64,64] ` +
          `but config.json implies [32,64] (num_key_value_heads=2, head_dim=16`,
      );
    });
  });

  await t.step("an unsupported dtype", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model);
      await rewriteWeights(dir, (m) => {
        m.get("model.layers.1.mlp.up_proj.weight")!.dtype = "I32";
      });
      await rejectsBoth(
        dir,
        `${
          join(dir, "model.safetensors")
        }: tensor "model.layers.1.mlp.up_proj.weight": unsupported dtype I32`,
      );
    });
  });

  await t.step("a missing tensor", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model);
      await rewriteWeights(dir, (m) => m.delete("model.layers.1.mlp.up_proj.weight"));
      await rejectsBoth(
        dir,
        `${join(dir, "model.safetensors")}: missing tensor model.layers.1.mlp.up_proj.weight`,
      );
    });
  });

  await t.step("an untied config without lm_head.weight", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, randomModel(tinyConfig({ tieWordEmbeddings: true }), 7));
      await writeConfig(dir, tinyConfig({ tieWordEmbeddings: false }));
      await rejectsBoth(
        dir,
        `${
          join(dir, "model.safetensors")
        }: missing tensor lm_head.weight (config.json has tie_word_embeddings=false)`,
      );
    });
  });

  await t.step("biases the config does not declare", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, randomModel(tinyConfig({ attentionBias: true }), 8));
      await writeConfig(dir, tinyConfig({ attentionBias: false }));
      await rejectsBoth(
        dir,
        "has tensor model.layers.0.self_attn.",
        "_proj.bias but config.json has attention_bias=false",
      );
    });
  });

  await t.step("more layers than the config declares", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, randomModel(tinyConfig({ numLayers: 3 }), 9));
      await writeConfig(dir, tinyConfig({ numLayers: 2 }));
      await rejectsBoth(dir, "has tensor model.layers.2.", "num_hidden_layers=2");
    });
  });

  await t.step("a shard index without an entry for a tensor", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model, { maxShardBytes: 50_000 });
      const path = join(dir, "model.safetensors.index.json");
      const index = JSON.parse(await Deno.readTextFile(path));
      delete index.weight_map["model.norm.weight"];
      await Deno.writeTextFile(path, JSON.stringify(index));
      await rejectsBoth(
        dir,
        `${path}: weight_map has no entry for tensor model.norm.weight`,
      );
    });
  });

  await t.step("a shard index naming a missing file", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model, { maxShardBytes: 50_000 });
      const shard = listDir(dir).find((f) => f.startsWith("model-00002"))!;
      await Deno.remove(join(dir, shard));
      await rejectsBoth(
        dir,
        `${join(dir, shard)}: not found`,
        "model.safetensors.index.json",
      );
    });
  });

  await t.step("a shard index pointing to a shard without the tensor", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model, { maxShardBytes: 50_000 });
      const path = join(dir, "model.safetensors.index.json");
      const index = JSON.parse(await Deno.readTextFile(path));
      const first = listDir(dir).find((f) => f.startsWith("model-00001"))!;
      assert.notEqual(index.weight_map["model.norm.weight"], first);
      index.weight_map["model.norm.weight"] = first;
      await Deno.writeTextFile(path, JSON.stringify(index));
      await rejectsBoth(
        dir,
        `${
          join(dir, first)
        }: missing tensor model.norm.weight (the weight_map of ${path} points here)`,
      );
    });
  });

  await t.step("a shard index with a path outside the folder", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model, { maxShardBytes: 50_000 });
      const path = join(dir, "model.safetensors.index.json");
      const index = JSON.parse(await Deno.readTextFile(path));
      index.weight_map["model.norm.weight"] = "../x.safetensors";
      await Deno.writeTextFile(path, JSON.stringify(index));
      await rejectsBoth(
        dir,
        `${path}: weight_map.model.norm.weight: expected a file name inside the model folder`,
      );
    });
  });

  await t.step("a shard index without a weight_map", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, model, { maxShardBytes: 50_000 });
      const path = join(dir, "model.safetensors.index.json");
      await Deno.writeTextFile(path, JSON.stringify({ metadata: {} }));
      await rejectsBoth(dir, `${path}: weight_map: expected an object`);
    });
  });
});

Deno.test("saveModel() rejects weights that disagree with the config", async (t) => {
  await t.step("a weight of the wrong length, leaving the folder untouched", async () => {
    const model = randomModel(tinyConfig(), 10);
    model.weights.layers[0]!.wk = new Float32Array(10);
    await withDir(async (dir) => {
      await assert.rejects(
        saveModel(dir, model),
        (e: unknown) =>
          e instanceof RangeError &&
          e.message.includes(
            "model.layers.0.self_attn.k_proj.weight has 10 values but shape [32,64] needs 2048",
          ),
      );
      assert.deepEqual(listDir(dir), []);
    });
  });

  await t.step("tied embeddings with a different lmHead", async () => {
    const model = randomModel(tinyConfig(), 11);
    model.config = { ...model.config, tieWordEmbeddings: true };
    await withDir(async (dir) => {
      await assert.rejects(saveModel(dir, model), RangeError);
    });
  });

  await t.step("biases without attentionBias", async () => {
    const model = randomModel(tinyConfig({ attentionBias: true }), 12);
    model.config = { ...model.config, attentionBias: false };
    await withDir(async (dir) => {
      await assert.rejects(saveModel(dir, model), RangeError);
    });
  });

  await t.step("no temporary files are left after saves", async () => {
    await withDir(async (dir) => {
      const model = randomModel(tinyConfig(), 13);
      await saveModel(dir, model, { maxShardBytes: 30_000 });
      await saveModel(dir, model);
      assert.ok(listDir(dir).every((f) => !f.endsWith(".tmp")), listDir(dir).join(" "));
    });
  });
});

Deno.test("loadModel({ compact: true }) keeps F16/BF16 matrices as the file's bits", async (t) => {
  for (const dtype of ["F16", "BF16"] as const) {
    await t.step(`${dtype}, sharded, tied embeddings and biases`, async () => {
      const model = randomModel(tinyConfig({ tieWordEmbeddings: true, attentionBias: true }), 4);
      await withDir(async (dir) => {
        await saveModel(dir, model, { dtype, maxShardBytes: 20_000 });
        const compact = await loadModel(dir, { compact: true });
        const wide = await loadModel(dir);
        const w = compact.weights;
        assert.equal(w.lmHead, w.embed, "tied head is the embedding object");
        // the bits are the file's own: read them with the whole-file parser
        const index = JSON.parse(
          await Deno.readTextFile(join(dir, "model.safetensors.index.json")),
        );
        const name = "model.layers.1.mlp.down_proj.weight";
        const file = join(dir, index.weight_map[name]);
        const view = parseSafetensors(await Deno.readFile(file), file).get(name)!;
        const down = w.layers[1]!.wDown;
        assert.ok(isHalf(down) && down.dtype === dtype);
        assert.deepEqual(new Uint8Array(down.bits.buffer), view.data);
        // norms and biases are float32; widening every matrix gives the float32 load exactly
        assert.ok(w.layers[0]!.bq instanceof Float32Array);
        assert.ok(w.finalNorm instanceof Float32Array);
        assertWeightsClose(widenModel(compact), wide, () => 0);
        assert.equal(modelBytes(compact) * 2 - modelBytes(wide), 4 * (64 + 2 * (2 * 64 + 128)));
      });
    });
  }

  await t.step("F32 files stay float32", async () => {
    await withDir(async (dir) => {
      await saveModel(dir, randomModel(tinyConfig(), 5));
      const m = await loadModel(dir, { compact: true });
      assert.ok(m.weights.layers[0]!.wq instanceof Float32Array);
    });
  });
});

Deno.test("writeModel() streams chunks from a source into the files saveModel() writes", async (t) => {
  const model = randomModel(tinyConfig(), 6);
  await t.step("chunks of 97 values give the same bytes as the model in memory", async () => {
    await withDir(async (dir) => {
      const a = join(dir, "a"), b = join(dir, "b");
      await saveModel(a, model, { dtype: "BF16", maxShardBytes: 30_000 });
      const whole = await loadModel(a);
      const specs: string[] = [];
      await writeModel(b, model.config, function* (p) {
        specs.push(`${p.slot}@${p.layer}`);
        const arr = p.layer === null
          ? whole.weights[p.slot as "embed" | "lmHead" | "finalNorm"]
          : whole.weights.layers[p.layer]![p.slot as "wq"];
        assert.equal(arr.length, p.length);
        for (let i = 0; i < p.length; i += 97) yield arr.slice(i, i + 97);
      }, { dtype: "BF16", maxShardBytes: 30_000 });
      assert.equal(new Set(specs).size, specs.length, "each weight is asked for once");
      assert.deepEqual(listDir(a), listDir(b));
      for (const f of listDir(a)) {
        assert.deepEqual(await Deno.readFile(join(b, f)), await Deno.readFile(join(a, f)), f);
      }
    });
  });

  await t.step("a source that gives the wrong number of values is refused", async () => {
    await withDir(async (dir) => {
      await assert.rejects(
        writeModel(dir, model.config, (p) => [new Float32Array(p.slot === "wUp" ? 3 : p.length)]),
        /model\.layers\.0\.mlp\.up_proj\.weight got 3 values, expected 11008/,
      );
      assert.ok(!listDir(dir).includes("config.json"));
    });
  });
});
