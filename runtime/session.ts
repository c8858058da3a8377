/**
 * A loaded model ready to be benchmarked: weights, tokenizer, compute engine and the facts
 * that go into every CSV row (backend, device); the backend choice (`auto` takes a hardware GPU
 * when there is one), and the checks of a model folder that need no weights.
 *
 * @module
 */
import { InputError } from "./errors.ts";
import { checkModelFolder, loadModel } from "./hf.ts";
import type { ModelConfig } from "./model.ts";
import { loadTokenizer, type TextTokenizer } from "./tokenizer.ts";
import { CpuModel } from "./cpu/forward.ts";
import { fastEngine } from "./cpu/engine_auto.ts";
import { getGpu, GpuUnavailableError } from "./gpu/device.ts";
import { GpuModel } from "./gpu/model.ts";
import { modelFingerprint } from "./hash.ts";

/** Where the model runs; `auto` picks WebGPU when a hardware GPU is there, else the CPU. */
export const BACKENDS = ["auto", "cpu", "webgpu"] as const;
/** A compute backend. */
export type Backend = (typeof BACKENDS)[number];

/** Where embedded models live: `data/models/<name>/`. */
export const EMBEDDED_MODELS_DIR = new URL("../data/models/", import.meta.url).pathname;

/**
 * The folder of a model named in an experiment: an embedded name (no slash) or a path.
 * @throws InputError when the folder or its config.json is missing
 */
export async function resolveModelDir(model: string, field = "model"): Promise<string> {
  const embedded = !model.includes("/") && !model.startsWith(".");
  const dir = embedded ? `${EMBEDDED_MODELS_DIR}${model}` : model;
  try {
    const st = await Deno.stat(`${dir}/config.json`);
    if (!st.isFile) throw new Deno.errors.NotFound();
  } catch {
    if (embedded) {
      const names: string[] = [];
      try {
        for await (const e of Deno.readDir(EMBEDDED_MODELS_DIR)) {
          if (e.isDirectory) names.push(e.name);
        }
      } catch { /* no embedded models */ }
      throw new InputError(
        `${field}: no embedded model named '${model}' (embedded: ${
          names.sort().join(", ") || "none"
        }); ` +
          `give a path to a Hugging Face model folder instead`,
      );
    }
    throw new InputError(
      `${field}: '${dir}' is not a Hugging Face model folder (no config.json there)`,
    );
  }
  return dir;
}

/** A model folder's parts that can be checked without loading its weights. */
export interface CheckedModel {
  config: ModelConfig;
  tokenizer: TextTokenizer;
}

/**
 * Checks a model folder the way {@link openSession} would load it, without reading the weights
 * (config.json, safetensors headers and sizes, tokenizer.json, their agreement), so a broken
 * folder is refused before a run writes anything.
 * @param dir the model folder (see {@link resolveModelDir})
 * @returns the parsed config and tokenizer
 * @throws InputError naming the file and the problem
 */
export async function checkModel(dir: string): Promise<CheckedModel> {
  const config = await checkModelFolder(dir);
  const tokenizer = await loadTokenizer(dir);
  checkVocab(dir, tokenizer, config);
  return { config, tokenizer };
}

/** @throws InputError when the tokenizer has ids the embedding has no row for */
function checkVocab(dir: string, tokenizer: TextTokenizer, config: ModelConfig): void {
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new InputError(
      `${dir}/tokenizer.json: ${tokenizer.vocabSize} tokens but config.json vocab_size is ${config.vocabSize}`,
    );
  }
}

/** A model loaded for evaluation. */
export interface Session {
  /** The model folder. */
  dir: string;
  /** Its content fingerprint (`modelFingerprint`, runtime/hash.ts). */
  fingerprint: string;
  /** The model on the CPU (perplexity, H2O and profiling run here on any backend). */
  cpu: CpuModel;
  /** The model's tokenizer. */
  tokenizer: TextTokenizer;
  /** Prepended to every prompt, or null. */
  bos: number | null;
  /** End-of-sequence ids and the newline token: an answer ends at any of them. */
  stopTokens: number[];
  /**
   * The backend generation runs on. With "webgpu", LongEval and throughput run on the GPU for
   * dense, moa and streaming; perplexity, H2O and profiling stay on the CPU.
   */
  backend: "cpu" | "webgpu";
  /** The weights on the GPU when the backend is webgpu. */
  gpu: GpuModel | null;
  /** A human-readable device name for the CSV. */
  device: string;
}

/**
 * Loads a model folder for a backend.
 * @param backend `webgpu` needs a WebGPU adapter (a clear error otherwise); `auto` uses a
 *   hardware GPU when there is one and otherwise the CPU, with a one-line notice (a software
 *   adapter such as llvmpipe is slower than the CPU backend, so auto does not pick it)
 * @param notice prints one-line notices (e.g. the auto fallback)
 */
export async function openSession(
  dir: string,
  backend: Backend,
  notice: (msg: string) => void = () => {},
): Promise<Session> {
  let useGpu = false;
  if (backend !== "cpu") {
    try {
      const gpu = await getGpu();
      if (backend === "webgpu" || !gpu.fallback) {
        useGpu = true;
      } else {
        notice(`backend auto: only a software WebGPU adapter (${gpu.name}); running on the CPU`);
      }
    } catch (e) {
      if (!(e instanceof GpuUnavailableError)) throw e;
      if (backend === "webgpu") throw new InputError(`backend: 'webgpu': ${e.message}`);
      notice(`backend auto: ${e.message}; running on the CPU`);
    }
  }
  const [model, tokenizer, fingerprint] = await Promise.all([
    // F16/BF16 matrices stay as stored: the model takes the checkpoint's own bytes
    loadModel(dir, { compact: true }),
    loadTokenizer(dir),
    modelFingerprint(dir),
  ]);
  checkVocab(dir, tokenizer, model.config);
  const engine = await fastEngine();
  const gpu = useGpu ? await GpuModel.load(model) : null;
  const newline = tokenizer.encode("\n");
  const stopTokens = [...model.config.eosTokenIds, ...(newline.length === 1 ? newline : [])];
  return {
    dir,
    fingerprint,
    cpu: new CpuModel(model, engine),
    tokenizer,
    bos: model.config.bosTokenId,
    stopTokens,
    backend: gpu ? "webgpu" : "cpu",
    gpu,
    device: gpu
      ? `${gpu.gpu.name}${gpu.gpu.driver ? ` (${gpu.gpu.driver})` : ""}`
      : `cpu ${navigator.hardwareConcurrency} cores (${engine.name})`,
  };
}

/** Token ids of a prompt as the model sees it (BOS first when the model has one). */
export function promptTokens(s: Pick<Session, "tokenizer" | "bos">, text: string): number[] {
  const ids = s.tokenizer.encode(text);
  return s.bos === null ? ids : [s.bos, ...ids];
}
