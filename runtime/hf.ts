/**
 * Loading and saving models in the Hugging Face folder layout: `config.json` plus either
 * `model.safetensors` or shards listed in `model.safetensors.index.json`.
 *
 * @module
 */
import { exists } from "./atomic.ts";
import { basename, dirname, isAbsolute, join } from "node:path";
import { configToJson, parseConfig, type TorchDtype } from "./config.ts";
import { InputError } from "./errors.ts";
import {
  type LayerWeights,
  type Model,
  type ModelConfig,
  type ModelWeights,
  type Slot,
  type Weight,
  weightLength,
  type WeightPlace,
  type WeightSource,
  widen,
  widenInto,
} from "./model.ts";

export type { Slot, WeightPlace, WeightSource };
import {
  type Dtype,
  DTYPE_BYTES,
  encodeValues,
  type FloatDtype,
  layoutSafetensors,
  SafetensorsFile,
  type TensorHeader,
} from "./safetensors.ts";

/** Name of the single-file weights. */
export const WEIGHTS_FILE = "model.safetensors";
/** Name of the shard index. */
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";
/** Name of the configuration file. */
export const CONFIG_FILE = "config.json";

const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** One tensor the model needs: its Hugging Face name, shape and where it goes. */
interface TensorSpec {
  name: string;
  shape: number[];
  /** The config fields the shape comes from, e.g. `(num_key_value_heads=2, head_dim=16, …)`. */
  note: string;
  /** Layer index, or null for the embedding, final norm and output head. */
  layer: number | null;
  slot: Slot;
}

/**
 * The tensors a config calls for, in load order: embedding, each layer, final norm, and the
 * output head unless tied; q/k/v biases only when the config has attention biases.
 */
function tensorSpecs(c: ModelConfig): TensorSpec[] {
  const { vocabSize: V, hiddenSize: C, numHeads: NH, numKvHeads: NKV, headDim: HS } = c;
  const F = c.intermediateSize;
  const v = `vocab_size=${V}`;
  const h = `hidden_size=${C}`;
  const q = `num_attention_heads=${NH}, head_dim=${HS}`;
  const kv = `num_key_value_heads=${NKV}, head_dim=${HS}`;
  const f = `intermediate_size=${F}`;
  const specs: TensorSpec[] = [
    {
      name: "model.embed_tokens.weight",
      shape: [V, C],
      note: `${v}, ${h}`,
      layer: null,
      slot: "embed",
    },
  ];
  const layer: [string, Slot, number[], string][] = [
    ["input_layernorm.weight", "inputNorm", [C], h],
    ["self_attn.q_proj.weight", "wq", [NH * HS, C], `${q}, ${h}`],
    ["self_attn.k_proj.weight", "wk", [NKV * HS, C], `${kv}, ${h}`],
    ["self_attn.v_proj.weight", "wv", [NKV * HS, C], `${kv}, ${h}`],
  ];
  if (c.attentionBias) {
    layer.push(
      ["self_attn.q_proj.bias", "bq", [NH * HS], q],
      ["self_attn.k_proj.bias", "bk", [NKV * HS], kv],
      ["self_attn.v_proj.bias", "bv", [NKV * HS], kv],
    );
  }
  layer.push(
    ["self_attn.o_proj.weight", "wo", [C, NH * HS], `${h}, ${q}`],
    ["post_attention_layernorm.weight", "postNorm", [C], h],
    ["mlp.gate_proj.weight", "wGate", [F, C], `${f}, ${h}`],
    ["mlp.up_proj.weight", "wUp", [F, C], `${f}, ${h}`],
    ["mlp.down_proj.weight", "wDown", [C, F], `${h}, ${f}`],
  );
  for (let l = 0; l < c.numLayers; l++) {
    for (const [suffix, slot, shape, note] of layer) {
      specs.push({ name: `model.layers.${l}.${suffix}`, shape, note, layer: l, slot });
    }
  }
  specs.push({ name: "model.norm.weight", shape: [C], note: h, layer: null, slot: "finalNorm" });
  if (!c.tieWordEmbeddings) {
    specs.push({
      name: "lm_head.weight",
      shape: [V, C],
      note: `${v}, ${h}`,
      layer: null,
      slot: "lmHead",
    });
  }
  return specs;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InputError(`${path}: not found (${what})`);
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path}: invalid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Rejects tensors that the config does not account for and that would change the model if
 * silently dropped: layers beyond `num_hidden_layers`, and biases the config does not declare.
 */
function checkUnexpected(names: Iterable<string>, c: ModelConfig, where: string): void {
  const expected = new Set(tensorSpecs(c).map((s) => s.name));
  for (const name of names) {
    if (expected.has(name)) continue;
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m !== null && Number(m[1]) >= c.numLayers) {
      throw new InputError(
        `${where}: has tensor ${name} but config.json has num_hidden_layers=${c.numLayers}`,
      );
    }
    if (name.endsWith(".bias")) {
      const why = /\.self_attn\.[qkv]_proj\.bias$/.test(name)
        ? `config.json has attention_bias=false`
        : `this runtime has no such bias`;
      throw new InputError(`${where}: has tensor ${name} but ${why}`);
    }
  }
}

/** Where each needed tensor lives: file path by tensor name, plus the file that says so. */
async function locateTensors(
  dir: string,
  specs: readonly TensorSpec[],
  config: ModelConfig,
): Promise<{ files: Map<string, TensorSpec[]>; index: string | null }> {
  const single = join(dir, WEIGHTS_FILE);
  if (await exists(single)) return { files: new Map([[single, [...specs]]]), index: null };
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (!(await exists(indexPath))) {
    const bin = await exists(join(dir, "pytorch_model.bin"));
    throw new InputError(
      `${dir}: no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} in the model folder` +
        (bin ? " (pytorch_model.bin is not supported; convert it to safetensors)" : ""),
    );
  }
  const index = await readJson(indexPath, "shard index");
  const map = isRecord(index) ? index["weight_map"] : undefined;
  if (!isRecord(map)) {
    throw new InputError(
      `${indexPath}: weight_map: expected an object mapping tensor names to file names`,
    );
  }
  for (const [name, file] of Object.entries(map)) {
    if (
      typeof file !== "string" || file === "" || isAbsolute(file) ||
      file.split(/[\\/]/).includes("..")
    ) {
      throw new InputError(
        `${indexPath}: weight_map.${name}: expected a file name inside the model folder, ` +
          `got ${JSON.stringify(file)}`,
      );
    }
  }
  checkUnexpected(Object.keys(map), config, indexPath);
  const files = new Map<string, TensorSpec[]>();
  for (const spec of specs) {
    const file = map[spec.name];
    if (typeof file !== "string") {
      throw new InputError(`${indexPath}: weight_map has no entry for tensor ${spec.name}`);
    }
    const path = join(dir, file);
    const list = files.get(path);
    if (list === undefined) files.set(path, [spec]);
    else list.push(spec);
  }
  return { files, index: indexPath };
}

/**
 * Checks that a tensor the config calls for is present with the shape the config implies.
 * @throws {InputError} naming the file, the tensor and the config fields
 */
function checkTensor(
  found: { shape: readonly number[] } | undefined,
  spec: TensorSpec,
  path: string,
  index: string | null,
): void {
  if (found === undefined) {
    const hint = spec.slot === "lmHead"
      ? " (config.json has tie_word_embeddings=false)"
      : index === null
      ? ""
      : ` (the weight_map of ${index} points here)`;
    throw new InputError(`${path}: missing tensor ${spec.name}${hint}`);
  }
  if (
    found.shape.length !== spec.shape.length || found.shape.some((d, i) => d !== spec.shape[i])
  ) {
    throw new InputError(
      `${path}: ${spec.name} has shape ${shapeText(found.shape)} but config.json implies ` +
        `${shapeText(spec.shape)} (${spec.note})`,
    );
  }
}

/** The dtypes {@linkcode loadModel} reads. */
const LOADABLE_DTYPES: readonly Dtype[] = ["F32", "F16", "BF16"];

/** A model folder's config and where each tensor it needs lives. */
async function readFolder(
  dir: string,
): Promise<
  {
    config: ModelConfig;
    specs: TensorSpec[];
    files: Map<string, TensorSpec[]>;
    index: string | null;
  }
> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(`${dir}: model folder not found`);
    }
    throw e;
  }
  if (!info.isDirectory) throw new InputError(`${dir}: expected a model folder, found a file`);
  const configPath = join(dir, CONFIG_FILE);
  const config = parseConfig(
    await readJson(configPath, "a model folder needs config.json"),
    configPath,
  );
  const specs = tensorSpecs(config);
  return { config, specs, ...(await locateTensors(dir, specs, config)) };
}

/**
 * Opens one weights file and checks every tensor wanted from it (presence, shape, dtype) and,
 * for a single-file model, that it holds nothing the config does not account for.
 */
async function openChecked(
  path: string,
  wanted: readonly TensorSpec[],
  config: ModelConfig,
  index: string | null,
): Promise<SafetensorsFile> {
  let file: SafetensorsFile;
  try {
    file = await SafetensorsFile.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(
        `${path}: not found` + (index === null ? "" : ` (named in the weight_map of ${index})`),
      );
    }
    throw e;
  }
  try {
    if (index === null) checkUnexpected(file.entries.keys(), config, path);
    for (const spec of wanted) {
      const entry = file.entries.get(spec.name);
      checkTensor(entry, spec, path, index);
      if (!LOADABLE_DTYPES.includes(entry!.dtype)) {
        throw new InputError(
          `${path}: tensor ${JSON.stringify(spec.name)}: unsupported dtype ${entry!.dtype} ` +
            `(expected ${LOADABLE_DTYPES.join(", ").replace(/, (?=[^,]*$)/, " or ")})`,
        );
      }
    }
    return file;
  } catch (e) {
    file.close();
    throw e;
  }
}

/**
 * Checks a model folder as {@linkcode loadModel} would, reading only `config.json`, the shard
 * index and the safetensors headers (not the weights): the config, every tensor's presence,
 * shape and dtype, and that no file is truncated. Use it to refuse a broken folder before any
 * output is written.
 *
 * @example
 * ```ts
 * import { checkModelFolder, saveModel } from "./hf.ts";
 * import { randomModel, tinyConfig } from "./random_model.ts";
 * const dir = await Deno.makeTempDir();
 * await saveModel(dir, randomModel(tinyConfig(), 1));
 * console.log((await checkModelFolder(dir)).numLayers); // 2
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param dir the model folder
 * @returns the parsed config
 * @throws {InputError} for everything {@linkcode loadModel} rejects but corrupt tensor values
 */
export async function checkModelFolder(dir: string): Promise<ModelConfig> {
  const { config, files, index } = await readFolder(dir);
  for (const [path, wanted] of files) (await openChecked(path, wanted, config, index)).close();
  return config;
}

/** Options of {@linkcode loadModel}. */
export interface LoadOptions {
  /**
   * Keep F16 and BF16 matrices as their 16-bit patterns (`HalfWeight`, model.ts) instead of
   * widening them to float32: the model then takes the checkpoint's own bytes in memory.
   * @default false
   */
  compact?: boolean;
}

/**
 * Loads a model folder in the Hugging Face layout (llama, mistral or qwen2; F32, F16 or BF16
 * safetensors, one file or sharded). Every tensor's shape is checked against `config.json`.
 * Tensors are read one at a time from the files straight into their own arrays, so loading
 * needs no memory beyond the weights themselves: with `compact`, F16/BF16 matrices stay half
 * precision (norms and biases are always widened), and the whole model takes about the
 * checkpoint's bytes; without it every weight is float32. With tied embeddings `lmHead` is the
 * same object as `embed` (a stored `lm_head.weight` is then not read, as Transformers ignores it).
 *
 * @example
 * ```ts
 * import { loadModel, saveModel } from "./hf.ts";
 * import { randomModel, tinyConfig } from "./random_model.ts";
 * const dir = await Deno.makeTempDir();
 * await saveModel(dir, randomModel(tinyConfig(), 1), { dtype: "BF16" });
 * const m = await loadModel(dir);
 * console.log(m.config.numLayers, m.weights.embed.length); // 2 16384
 * const compact = await loadModel(dir, { compact: true });
 * console.log("bits" in compact.weights.embed); // true
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param dir the model folder
 * @param opts whether half-precision matrices stay compact
 * @returns the config and the weights
 * @throws {InputError} when the folder, config.json or a tensor is missing, or a file is
 *   malformed, or a shape disagrees with config.json
 */
export function loadModel(dir: string, opts?: LoadOptions & { compact?: false }): Promise<Model>;
/**
 * Loads a model folder, keeping F16/BF16 matrices compact when `opts.compact` is true (see the
 * overload above for the rest).
 * @param dir the model folder
 * @param opts whether half-precision matrices stay compact
 * @returns the config and the weights, matrices in their stored precision
 */
export function loadModel(dir: string, opts: LoadOptions): Promise<Model<Weight>>;
export async function loadModel(dir: string, opts: LoadOptions = {}): Promise<Model<Weight>> {
  const { config, files, index } = await readFolder(dir);
  const loaded = new Map<string, Weight>();
  for (const [path, wanted] of files) {
    const file = await openChecked(path, wanted, config, index);
    try {
      for (const spec of wanted) {
        const dtype = file.entry(spec.name).dtype;
        const matrix = spec.shape.length === 2;
        loaded.set(
          spec.name,
          opts.compact && matrix && (dtype === "F16" || dtype === "BF16")
            ? { dtype, bits: await file.readHalf(spec.name) }
            : await file.readFloat32(spec.name),
        );
      }
    } finally {
      file.close();
    }
  }

  const matrix = (name: string): Weight => loaded.get(name)!;
  const vector = (name: string): Float32Array => loaded.get(name) as Float32Array;
  const layers: LayerWeights<Weight>[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const bias = (n: string) =>
      config.attentionBias ? vector(`${p}self_attn.${n}_proj.bias`) : null;
    layers.push({
      inputNorm: vector(`${p}input_layernorm.weight`),
      wq: matrix(`${p}self_attn.q_proj.weight`),
      wk: matrix(`${p}self_attn.k_proj.weight`),
      wv: matrix(`${p}self_attn.v_proj.weight`),
      bq: bias("q"),
      bk: bias("k"),
      bv: bias("v"),
      wo: matrix(`${p}self_attn.o_proj.weight`),
      postNorm: vector(`${p}post_attention_layernorm.weight`),
      wGate: matrix(`${p}mlp.gate_proj.weight`),
      wUp: matrix(`${p}mlp.up_proj.weight`),
      wDown: matrix(`${p}mlp.down_proj.weight`),
    });
  }
  const embed = matrix("model.embed_tokens.weight");
  const weights: ModelWeights<Weight> = {
    embed,
    layers,
    finalNorm: vector("model.norm.weight"),
    lmHead: config.tieWordEmbeddings ? embed : matrix("lm_head.weight"),
  };
  return { config, weights };
}

/** Options of {@linkcode saveModel}. */
export interface SaveOptions {
  /** Element type of the written tensors. @default "F32" */
  dtype?: FloatDtype;
  /** Above this many bytes of tensor data, weights are split into shards. @default 5e9 */
  maxShardBytes?: number;
}

const TORCH_DTYPE: Readonly<Record<FloatDtype, TorchDtype>> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}

/** Writes `chunks` to a temporary file beside `path`, then renames it over `path`. */
async function writeFileAtomic(
  path: string,
  chunks: Iterable<Uint8Array>,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${crypto.randomUUID()}.tmp`);
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
    try {
      for (const chunk of chunks) await writeAll(file, chunk);
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** A tensor of a file being written: its header and where its values come from. */
interface TensorOut extends TensorHeader {
  place: WeightPlace;
}

/** Elements per chunk when a stored weight is written. */
const SAVE_CHUNK = 1 << 20;

/** The chunks of a stored weight, widened from half precision where needed. */
function* weightChunks(w: Weight): Generator<Float32Array> {
  const n = weightLength(w);
  const buf = new Float32Array(Math.min(n, SAVE_CHUNK));
  for (let i = 0; i < n; i += buf.length) {
    const m = Math.min(buf.length, n - i);
    widenInto(buf, w, i, m);
    yield buf.subarray(0, m);
  }
}

/** The weight a spec names in a model, checked against the shape its config implies. */
function weightAt(model: Model<Weight>, spec: TensorSpec): Weight {
  const w = model.weights;
  const data = spec.layer === null
    ? w[spec.slot as "embed" | "finalNorm" | "lmHead"]
    : w.layers[spec.layer]![spec.slot as keyof LayerWeights];
  if (data === null) throw new RangeError(`saveModel: ${spec.name} is null`);
  const n = placeOf(spec).length;
  if (weightLength(data) !== n) {
    throw new RangeError(
      `saveModel: ${spec.name} has ${weightLength(data)} values but shape ` +
        `${shapeText(spec.shape)} needs ${n}`,
    );
  }
  return data;
}

function sameWeight(a: Weight, b: Weight): boolean {
  if (a === b) return true;
  const x = widen(a), y = widen(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Checks a model's weights against its config before anything is written. */
function checkSavable(model: Model<Weight>): void {
  const { config: c, weights: w } = model;
  if (w.layers.length !== c.numLayers) {
    throw new RangeError(`saveModel: ${w.layers.length} layers but config has ${c.numLayers}`);
  }
  if (c.tieWordEmbeddings && !sameWeight(w.lmHead, w.embed)) {
    throw new RangeError("saveModel: config ties embeddings but lmHead differs from embed");
  }
  if (!c.attentionBias && w.layers.some((l) => l.bq || l.bk || l.bv)) {
    throw new RangeError("saveModel: layers carry q/k/v biases but config has attentionBias false");
  }
  for (const spec of tensorSpecs(c)) weightAt(model, spec);
}

function placeOf(spec: TensorSpec): WeightPlace {
  return { slot: spec.slot, layer: spec.layer, length: spec.shape.reduce((a, b) => a * b, 1) };
}

/** A file's bytes in order: the header, then each tensor's chunks encoded as they come. */
function* fileChunks(tensors: TensorOut[], source: WeightSource): Generator<Uint8Array> {
  const layout = layoutSafetensors(tensors, { format: "pt" });
  yield layout.prefix;
  for (const t of layout.tensors) {
    let n = 0;
    for (const chunk of source(t.place)) {
      n += chunk.length;
      yield encodeValues(chunk, t.dtype);
    }
    if (n !== t.place.length) {
      throw new RangeError(`writeModel: ${t.name} got ${n} values, expected ${t.place.length}`);
    }
  }
}

/**
 * Saves a model as a Hugging Face folder: `config.json` and `model.safetensors`, or, when the
 * tensor data exceeds `maxShardBytes`, shards `model-0000i-of-0000N.safetensors` plus
 * `model.safetensors.index.json`. The folder is created if needed; other files in it (a
 * tokenizer, say) are left alone, but weight files of an earlier save are replaced or removed.
 * Each file is written atomically; `config.json` is removed first and written last, so a crash
 * part-way leaves a folder that {@linkcode loadModel} rejects rather than a mix of old and new.
 * Compact (half-precision) matrices are widened a chunk at a time on the way out.
 *
 * @example
 * ```ts
 * import { saveModel } from "./hf.ts";
 * import { randomModel, tinyConfig } from "./random_model.ts";
 * const dir = await Deno.makeTempDir();
 * await saveModel(dir, randomModel(tinyConfig({ tieWordEmbeddings: true })), { dtype: "F16" });
 * console.log([...Deno.readDirSync(dir)].map((e) => e.name).sort());
 * // [ "config.json", "model.safetensors" ]
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param dir the model folder
 * @param model the model to write
 * @param opts dtype (default F32) and shard size (default 5e9 bytes)
 * @returns nothing; resolves once every file is in place
 * @throws {RangeError} when the weights disagree with the config
 */
export async function saveModel(
  dir: string,
  model: Model<Weight>,
  opts: SaveOptions = {},
): Promise<void> {
  checkSavable(model);
  const specs = new Map(tensorSpecs(model.config).map((s) => [`${s.slot}@${s.layer}`, s]));
  await writeModel(
    dir,
    model.config,
    (place) => weightChunks(weightAt(model, specs.get(`${place.slot}@${place.layer}`)!)),
    opts,
  );
}

/**
 * Writes a model folder from a {@linkcode WeightSource}, one chunk at a time: what
 * {@linkcode saveModel} does for a model in memory, and how checkpoints larger than memory are
 * generated (`randomWeights` in random_model.ts). Files, shards and atomicity as in saveModel.
 *
 * @example
 * ```ts
 * import { loadModel, writeModel } from "./hf.ts";
 * import { tinyConfig } from "./random_model.ts";
 * const dir = await Deno.makeTempDir();
 * await writeModel(dir, tinyConfig(), (p) => [new Float32Array(p.length).fill(0.5)]);
 * console.log((await loadModel(dir)).weights.embed[0]); // 0.5
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @param dir the model folder
 * @param config the architecture; every tensor it implies is asked of `source` once
 * @param source the values of each weight
 * @param opts dtype (default F32) and shard size (default 5e9 bytes)
 * @returns nothing; resolves once every file is in place
 * @throws {RangeError} when a source gives a weight the wrong number of values
 */
export async function writeModel(
  dir: string,
  config: ModelConfig,
  source: WeightSource,
  opts: SaveOptions = {},
): Promise<void> {
  const dtype = opts.dtype ?? "F32";
  const maxShardBytes = opts.maxShardBytes ?? 5e9;
  if (!(maxShardBytes > 0)) throw new RangeError(`saveModel: maxShardBytes must be positive`);
  const tensors: TensorOut[] = tensorSpecs(config).map((spec) => ({
    name: spec.name,
    dtype,
    shape: spec.shape,
    place: placeOf(spec),
  }));
  const configText = JSON.stringify(configToJson(config, TORCH_DTYPE[dtype]), null, 2) + "\n";

  const shards: TensorOut[][] = [];
  let current: TensorOut[] = [];
  let currentBytes = 0;
  let totalBytes = 0;
  for (const t of tensors) {
    const bytes = t.place.length * DTYPE_BYTES[dtype];
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(t);
    currentBytes += bytes;
    totalBytes += bytes;
  }
  shards.push(current);

  await Deno.mkdir(dir, { recursive: true });
  const configPath = join(dir, CONFIG_FILE);
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  const singlePath = join(dir, WEIGHTS_FILE);
  const oldShards: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && SHARD_NAME.test(e.name)) oldShards.push(e.name);
  }
  await removeIfPresent(configPath);

  if (shards.length === 1) {
    await writeFileAtomic(singlePath, fileChunks(shards[0]!, source));
    await removeIfPresent(indexPath);
    for (const name of oldShards) await removeIfPresent(join(dir, name));
  } else {
    await removeIfPresent(indexPath);
    await removeIfPresent(singlePath);
    const n = shards.length;
    const pad = (i: number) => String(i).padStart(5, "0");
    const weightMap: Record<string, string> = {};
    const written = new Set<string>();
    for (let i = 0; i < n; i++) {
      const name = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
      await writeFileAtomic(join(dir, name), fileChunks(shards[i]!, source));
      for (const t of shards[i]!) weightMap[t.name] = name;
      written.add(name);
    }
    for (const name of oldShards) if (!written.has(name)) await removeIfPresent(join(dir, name));
    const sortedMap = Object.fromEntries(
      Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    );
    const index = { metadata: { total_size: totalBytes }, weight_map: sortedMap };
    await writeFileAtomic(indexPath, [
      new TextEncoder().encode(JSON.stringify(index, null, 2) + "\n"),
    ]);
  }
  await writeFileAtomic(configPath, [new TextEncoder().encode(configText)]);
}
