/**
 * Decode attention off scalar TypeScript: the keys and values of a KV cache live in a
 * WebAssembly memory of their own, and a 128-bit SIMD kernel (engine_simd.wat, with relaxed
 * fused multiply-add) attends over them in place. Every cache class computes its decode
 * attention through one entry point, {@link KvMemory.attend}: the query heads that share a kv
 * head, over the key rows listed as runs of consecutive rows (a dense head is one run, a MoA
 * ring at most three, an H2O head one).
 *
 * Where the kernel cannot run (no WebAssembly SIMD, a head size that is not a multiple of 32, or a cache over 2 GiB) the same memory is
 * plain Float32Arrays and `attend` runs the scalar loops below, with the same results up to
 * rounding.
 *
 * Measured on moa-tiny's shape (HS 32, 2 query heads per kv head), decode attention over 4,096
 * keys: see `deno task bench cpu` (README, "How it runs on the CPU").
 *
 * @module
 */
import { softmaxRow } from "./ops.ts";
import { ENGINE_SIMD_WASM } from "./engine_simd_wasm.ts";
import { envFlag } from "./engine.ts";

/** Caches larger than this keep plain arrays (a wasm32 memory addresses at most 4 GiB). */
const MAX_WASM_BYTES = 2 ** 31;
const PAGE = 65536;

let compiled: WebAssembly.Module | null | undefined;

/**
 * The compiled kernel, or null where this WebAssembly has no (relaxed) SIMD or `MOA_SIMD=0`
 * (which keeps decode attention on the scalar loops, for comparison).
 */
export function simdModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    compiled = null;
    if (envFlag("MOA_SIMD") !== "0") {
      const bytes = Uint8Array.from(atob(ENGINE_SIMD_WASM), (c) => c.charCodeAt(0));
      if (WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes);
    }
  }
  return compiled;
}

type AttendFn = (
  q: number,
  k: number,
  v: number,
  runs: number,
  nruns: number,
  G: number,
  HS: number,
  scale: number,
  out: number,
  scores: number,
  probs: number,
) => void;

/** Sizes of a {@link KvMemory}. */
export interface KvMemoryShape {
  /** Layers; each gets one K and one V array. */
  layers: number;
  /** Floats of each K (and each V) array. */
  floats: number;
  /** Query heads per kv head (G = NH / NKV). */
  group: number;
  /** Head size. */
  headDim: number;
  /** The most key rows one `attend` call lists. */
  maxKeys: number;
  /** The most runs one `attend` call lists. @default 4 */
  maxRuns?: number;
  /** false: plain arrays and the scalar loops even where the kernel runs (to compare). */
  simd?: boolean;
}

/**
 * The K and V arrays of one cache, per layer, and the decode attention over them. In
 * WebAssembly memory (one memory per cache, freed with it) when the SIMD kernel is available
 * and the cache fits in 2 GiB; plain Float32Arrays otherwise.
 */
export class KvMemory {
  /** Per layer, the keys: `floats` values, laid out as the cache chooses (rows of HS). */
  readonly k: Float32Array[];
  /** Per layer, the values, laid out as the keys. */
  readonly v: Float32Array[];
  /** Whether `attend` runs the SIMD kernel. */
  readonly simd: boolean;
  readonly #G: number;
  readonly #HS: number;
  readonly #maxKeys: number;
  readonly #maxRuns: number;
  readonly #scale: number;
  /** SIMD only: the kernel and byte offsets of its scratch. */
  readonly #attend: AttendFn | null = null;
  readonly #heap: Float32Array | null = null;
  readonly #heapI32: Int32Array | null = null;
  readonly #q: number = 0;
  readonly #out: number = 0;
  readonly #runs: number = 0;
  readonly #scores: number = 0;
  /** Byte offsets of each layer's K and V arrays (SIMD only). */
  readonly #kAt: number[] = [];
  readonly #vAt: number[] = [];
  /** Scalar fallback scratch. */
  readonly #tsScores: Float32Array | null = null;

  /**
   * Allocates zeroed K and V arrays for every layer.
   * @param shape sizes; see {@link KvMemoryShape}
   */
  constructor(shape: KvMemoryShape) {
    const { layers, floats, group: G, headDim: HS, maxKeys } = shape;
    this.#G = G;
    this.#HS = HS;
    this.#maxKeys = maxKeys;
    this.#maxRuns = shape.maxRuns ?? 4;
    this.#scale = 1 / Math.sqrt(HS);
    const align = (n: number) => Math.ceil(n / 16) * 16;
    const arrayBytes = align(floats * 4);
    const qBytes = align(G * HS * 4);
    const runsBytes = align(this.#maxRuns * 8);
    const scoresBytes = align(G * (Math.ceil(maxKeys / 4) * 4) * 4);
    const total = 2 * layers * arrayBytes + 2 * qBytes + runsBytes + scoresBytes;
    const module = shape.simd !== false && HS % 32 === 0 && total <= MAX_WASM_BYTES
      ? simdModule()
      : null;
    if (module === null) {
      this.simd = false;
      this.k = Array.from({ length: layers }, () => new Float32Array(floats));
      this.v = Array.from({ length: layers }, () => new Float32Array(floats));
      this.#tsScores = new Float32Array(Math.max(1, maxKeys));
      return;
    }
    this.simd = true;
    const memory = new WebAssembly.Memory({ initial: Math.ceil(total / PAGE) });
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    this.#attend = instance.exports.attend as AttendFn;
    const buf = memory.buffer;
    this.#heap = new Float32Array(buf);
    this.#heapI32 = new Int32Array(buf);
    this.k = [];
    this.v = [];
    let at = 0;
    for (let l = 0; l < layers; l++) {
      this.#kAt.push(at);
      this.k.push(new Float32Array(buf, at, floats));
      at += arrayBytes;
      this.#vAt.push(at);
      this.v.push(new Float32Array(buf, at, floats));
      at += arrayBytes;
    }
    this.#q = at;
    this.#out = at + qBytes;
    this.#runs = this.#out + qBytes;
    this.#scores = this.#runs + runsBytes;
  }

  /** Bytes of the K and V arrays. */
  get bytes(): number {
    return this.k.reduce((a, k) => a + k.byteLength, 0) * 2;
  }

  /**
   * Attention of the G query heads of one kv head over the listed key rows of one layer:
   * out[i] = Σ_j softmax_j(q[i]·k_j / √HS) · v_j, for rows j in order of the runs.
   *
   * @param layer whose K and V to read
   * @param out written: G rows of HS from `outAt`
   * @param outAt element offset in `out`
   * @param q G rows of HS from `qAt`
   * @param qAt element offset in `q`
   * @param runs pairs (first row, row count); rows count HS floats from the start of the layer's
   *   arrays
   * @param nruns pairs used (at most the shape's maxRuns); their counts add up to at most
   *   maxKeys. No rows: out is zero
   * @param probs when given, probs[j] += Σ_i (query i's probability of the j-th listed key)
   */
  attend(
    layer: number,
    out: Float32Array,
    outAt: number,
    q: Float32Array,
    qAt: number,
    runs: Int32Array,
    nruns: number,
    probs: Float64Array | null = null,
  ): void {
    const G = this.#G, HS = this.#HS;
    if (nruns > this.#maxRuns) {
      throw new RangeError(`KvMemory: ${nruns} runs; at most ${this.#maxRuns}`);
    }
    let n = 0;
    for (let r = 0; r < nruns; r++) n += runs[2 * r + 1]!;
    if (n > this.#maxKeys) throw new RangeError(`KvMemory: ${n} keys; at most ${this.#maxKeys}`);
    const attend = this.#attend;
    if (attend === null) {
      this.#attendScalar(this.k[layer]!, this.v[layer]!, out, outAt, q, qAt, runs, nruns, n, probs);
      return;
    }
    const heap = this.#heap!, I = this.#heapI32!;
    heap.set(q.subarray(qAt, qAt + G * HS), this.#q >> 2);
    for (let r = 0; r < 2 * nruns; r++) I[(this.#runs >> 2) + r] = runs[r]!;
    attend(
      this.#q,
      this.#kAt[layer]!,
      this.#vAt[layer]!,
      this.#runs,
      nruns,
      G,
      HS,
      this.#scale,
      this.#out,
      this.#scores,
      probs ? 1 : 0,
    );
    out.set(heap.subarray(this.#out >> 2, (this.#out >> 2) + G * HS), outAt);
    if (probs) {
      const n4 = Math.ceil(n / 4) * 4, s0 = this.#scores >> 2;
      for (let i = 0; i < G; i++) {
        const row = s0 + i * n4;
        for (let j = 0; j < n; j++) probs[j]! += heap[row + j]!;
      }
    }
  }

  /** `attend` in scalar TypeScript. */
  #attendScalar(
    K: Float32Array,
    V: Float32Array,
    out: Float32Array,
    outAt: number,
    q: Float32Array,
    qAt: number,
    runs: Int32Array,
    nruns: number,
    n: number,
    probs: Float64Array | null,
  ): void {
    const G = this.#G, HS = this.#HS, scale = this.#scale, scores = this.#tsScores!;
    for (let i = 0; i < G; i++) {
      const qo = qAt + i * HS, oo = outAt + i * HS;
      out.fill(0, oo, oo + HS);
      if (n === 0) continue;
      let j = 0;
      for (let r = 0; r < nruns; r++) {
        for (let c = 0, ko = runs[2 * r]! * HS; c < runs[2 * r + 1]!; c++, ko += HS) {
          let s = 0;
          for (let d = 0; d < HS; d++) s += q[qo + d]! * K[ko + d]!;
          scores[j++] = s * scale;
        }
      }
      softmaxRow(scores, 0, n);
      j = 0;
      for (let r = 0; r < nruns; r++) {
        for (let c = 0, vo = runs[2 * r]! * HS; c < runs[2 * r + 1]!; c++, vo += HS) {
          const p = scores[j]!;
          for (let d = 0; d < HS; d++) out[oo + d]! += p * V[vo + d]!;
          if (probs) probs[j]! += p;
          j++;
        }
      }
    }
  }
}
