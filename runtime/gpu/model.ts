/**
 * The weights of the LLaMA-family forward pass on WebGPU (runtime/gpu/), uploaded once and
 * shared by every session.
 *
 * A {@link GpuModel} holds the weights on the device (f32 or f16). The caches and activations of
 * a batch live in a `GpuSession` (session.ts), which runs the op lists of forward_ops.ts.
 *
 * @module
 */
import { allFloat32, isHalf, type Model, type ModelConfig, type Weight, widen } from "../model.ts";
import {
  bytesOf,
  checkAlive,
  encodeAs,
  getGpu,
  type Gpu,
  storage,
  type StorageType,
} from "./device.ts";
import { type KernelConfig, type Op, runOps } from "./kernels/_op.ts";
import { fillOp } from "./kernels/elementwise.ts";

/** Options of {@link GpuModel.load}. */
export interface GpuModelOptions {
  /**
   * storage type of the weights @default "f32", or "f16" for a model whose matrices are kept
   * F16/BF16 (runtime/model.ts) when the device has `shader-f16`
   */
  weights?: StorageType;
  /** storage type of the KV cache @default "f32" */
  kv?: StorageType;
  /** the device @default the shared one ({@link getGpu}) */
  gpu?: Gpu;
}

interface LayerBuffers {
  inputNorm: GPUBuffer;
  /** (NH·HS + 2·NKV·HS, C): q, k, v projections stacked */
  wqkv: GPUBuffer;
  bqkv: GPUBuffer | null;
  wo: GPUBuffer;
  postNorm: GPUBuffer;
  /** (2F, C): gate, up stacked */
  wgu: GPUBuffer;
  wDown: GPUBuffer;
}

/**
 * A weight in a storage type: F16 matrices go up as the checkpoint stored them; BF16 ones (WGSL
 * has no bfloat16) and float32 ones are converted, one matrix at a time.
 */
function encodeWeight(w: Weight, type: StorageType): Float32Array | Uint16Array {
  return isHalf(w) && w.dtype === "F16" && type === "f16" ? w.bits : encodeAs(widen(w), type);
}

function concat<A extends Float32Array | Uint16Array>(parts: A[]): A {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = (parts[0] instanceof Uint16Array ? new Uint16Array(n) : new Float32Array(n)) as A;
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A model's weights on a WebGPU device. */
export class GpuModel {
  /** bytes of weights on the device */
  readonly weightBytes: number;

  private constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    readonly kernels: KernelConfig,
    readonly embed: GPUBuffer,
    readonly lmHead: GPUBuffer,
    readonly finalNorm: GPUBuffer,
    readonly layers: LayerBuffers[],
    weightBytes: number,
  ) {
    this.weightBytes = weightBytes;
  }

  /**
   * Uploads a model's weights.
   * @param model config and weights, float32 or with F16/BF16 matrices
   * @param opts storage types, device
   * @returns the model on the GPU
   * @throws {GpuUnavailableError} when there is no device
   * @throws {RangeError} when f16 is asked for and the device lacks `shader-f16`, or a shape
   *   does not suit the kernels (C, F and head size must be multiples of 4)
   */
  static async load(model: Model<Weight>, opts: GpuModelOptions = {}): Promise<GpuModel> {
    const gpu = opts.gpu ?? await getGpu();
    const c = model.config;
    const weights = opts.weights ?? (!allFloat32(model) && gpu.f16 ? "f16" : "f32");
    const kv = opts.kv ?? "f32";
    if ((weights === "f16" || kv === "f16") && !gpu.f16) {
      throw new RangeError(
        `GpuModel.load(): f16 storage needs the shader-f16 feature, which "${gpu.name}" lacks; ` +
          "use f32",
      );
    }
    for (
      const [name, v] of [
        ["hidden size", c.hiddenSize],
        ["intermediate size", c.intermediateSize],
        ["head size", c.headDim],
      ] as const
    ) {
      if (v % 4 !== 0) {
        throw new RangeError(
          `GpuModel.load(): ${name} is ${v}; the GPU kernels need a multiple of 4`,
        );
      }
    }
    const k: KernelConfig = { weights, kv, HS: c.headDim, NH: c.numHeads, NKV: c.numKvHeads };
    let bytes = 0;
    const upEncoded = (label: string, enc: Float32Array | Uint16Array) => {
      bytes += enc.byteLength;
      return storage(gpu, label, enc);
    };
    const up = (label: string, data: Weight) => upEncoded(label, encodeWeight(data, weights));
    const stacked = (label: string, parts: Weight[]) =>
      upEncoded(label, concat(parts.map((p) => encodeWeight(p, weights))));
    const w = model.weights;
    const embed = up("embed", w.embed);
    const lmHead = w.lmHead === w.embed ? embed : up("lm_head", w.lmHead);
    const finalNorm = up("final norm", w.finalNorm);
    const layers = w.layers.map((l, i): LayerBuffers => {
      const hasBias = l.bq !== null || l.bk !== null || l.bv !== null;
      const zeros = (n: number) => new Float32Array(n);
      const HS = c.headDim;
      return {
        inputNorm: up(`layer ${i} input norm`, l.inputNorm),
        wqkv: stacked(`layer ${i} wqkv`, [l.wq, l.wk, l.wv]),
        bqkv: hasBias
          ? stacked(`layer ${i} bqkv`, [
            l.bq ?? zeros(c.numHeads * HS),
            l.bk ?? zeros(c.numKvHeads * HS),
            l.bv ?? zeros(c.numKvHeads * HS),
          ])
          : null,
        wo: up(`layer ${i} wo`, l.wo),
        postNorm: up(`layer ${i} post norm`, l.postNorm),
        wgu: stacked(`layer ${i} wgu`, [l.wGate, l.wUp]),
        wDown: up(`layer ${i} wdown`, l.wDown),
      };
    });
    checkAlive(gpu);
    return new GpuModel(gpu, c, k, embed, lmHead, finalNorm, layers, bytes);
  }

  /**
   * A model of the given shape with pseudo-random weights generated on the device (no host
   * arrays, so a 7B-class shape loads in seconds): for speed benchmarks only.
   * @param config the shape
   * @param opts storage types, device, seed
   * @returns the model on the GPU
   */
  static async random(
    config: ModelConfig,
    opts: GpuModelOptions & { seed?: number } = {},
  ): Promise<GpuModel> {
    const gpu = opts.gpu ?? await getGpu();
    const c = config;
    const weights = opts.weights ?? "f32", kv = opts.kv ?? "f32";
    if ((weights === "f16" || kv === "f16") && !gpu.f16) {
      throw new RangeError(
        `GpuModel.random(): f16 storage needs shader-f16, which "${gpu.name}" lacks`,
      );
    }
    const k: KernelConfig = { weights, kv, HS: c.headDim, NH: c.numHeads, NKV: c.numKvHeads };
    let bytes = 0, seed = opts.seed ?? 1;
    const ops: Op[] = [];
    const make = async (label: string, n: number, fanIn: number, center = 0) => {
      const b = storage(gpu, label, n * bytesOf(weights));
      bytes += n * bytesOf(weights);
      ops.push(await fillOp(gpu, k, b, n, seed++, center ? 0.1 : Math.sqrt(3 / fanIn), center));
      return b;
    };
    const C = c.hiddenSize, F = c.intermediateSize, HS = c.headDim;
    const width = (c.numHeads + 2 * c.numKvHeads) * HS;
    const embed = await make("embed", c.vocabSize * C, C);
    const lmHead = c.tieWordEmbeddings ? embed : await make("lm_head", c.vocabSize * C, C);
    const finalNorm = await make("final norm", C, 1, 1);
    const layers: LayerBuffers[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      layers.push({
        inputNorm: await make(`layer ${i} input norm`, C, 1, 1),
        wqkv: await make(`layer ${i} wqkv`, width * C, C),
        bqkv: null,
        wo: await make(`layer ${i} wo`, C * c.numHeads * HS, c.numHeads * HS),
        postNorm: await make(`layer ${i} post norm`, C, 1, 1),
        wgu: await make(`layer ${i} wgu`, 2 * F * C, C),
        wDown: await make(`layer ${i} wdown`, C * F, F),
      });
    }
    await runOps(gpu, ops);
    checkAlive(gpu);
    return new GpuModel(gpu, c, k, embed, lmHead, finalNorm, layers, bytes);
  }

  /** Frees the weights. */
  destroy(): void {
    for (const l of this.layers) {
      for (const b of Object.values(l)) (b as GPUBuffer | null)?.destroy();
    }
    this.embed.destroy();
    if (this.lmHead !== this.embed) this.lmHead.destroy();
    this.finalNorm.destroy();
  }
}
