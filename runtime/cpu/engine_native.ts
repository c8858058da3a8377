/**
 * onnxruntime-node as an engine: the native CPU library (MLAS kernels, AVX-512 where the CPU has
 * it) through Node-API. The package ships its binaries, so it loads wherever npm installed it;
 * where it does not (browsers, other platforms), `NativeEngine.create` throws and `fastEngine`
 * falls back to the WebAssembly engines.
 *
 * Per-call cost is what a small model's decode step is made of, so:
 * - sessions are built once: per model, one session per layer for the attention inputs
 *   (RMSNorm, fused QKV, biases, RoPE) and one for the rest of the layer (output projection,
 *   residual, RMSNorm, fused gate/up, SwiGLU, down projection, residual), with the weights as
 *   initializers so that onnxruntime pre-packs them; one for the final norm and the logits;
 * - runs call the binding's synchronous `run` directly (the package's `InferenceSession.run`
 *   defers every call by a macrotask), with outputs bound to the caller's arrays;
 * - prefill attention reads the KV cache's own buffers in place, in blocks of 128 queries so that
 *   the causal half is not computed, each kv head's query heads as one product (twice as fast as
 *   onnxruntime's GroupQueryAttention here).
 *
 * @module
 */
import type { Tensor } from "onnxruntime-node";
import { allFloat32, type Model } from "../model.ts";
import { GraphBuilder, productGraph, transposed } from "../onnx/graph.ts";
import {
  type Engine,
  type LayerKernels,
  preparedOnce,
  productKernels,
  rangeAttentionByProducts,
  splitColumns,
  stackRows,
} from "./engine.ts";
import { ropeInvFreq } from "./ops.ts";

type Binding = typeof import("onnxruntime-node/dist/binding.js");
type Session = InstanceType<Binding["binding"]["InferenceSession"]>;
type Feeds = Record<string, Tensor>;

/** The binding and the tensor class, once loaded (`NativeEngine.create`). */
let lib: { binding: Binding["binding"]; Tensor: typeof Tensor } | null = null;

/** Loads onnxruntime-node (imported only here, so that a missing binary is an error to catch). */
async function load(): Promise<NonNullable<typeof lib>> {
  if (lib === null) {
    const [b, common] = await Promise.all([
      import("onnxruntime-node/dist/binding.js"),
      import("onnxruntime-node"),
    ]);
    b.initOrt();
    lib = { binding: b.binding, Tensor: common.Tensor };
  }
  return lib;
}

/** A tensor over `data` (no copy). */
function tensor(
  type: "float32" | "int32" | "int64",
  data: Float32Array | Int32Array | BigInt64Array,
  dims: number[],
): Tensor {
  return new lib!.Tensor(type, data, dims);
}

/**
 * Query rows per attention run in prefill: the causal waste is one block's triangle. Measured on
 * moa-tiny with 2 threads: 128 ran 1k and 4k prefill attention 2× and 2.5× faster than
 * onnxruntime's GroupQueryAttention (which multiplies each query head on its own), 64 and 32 as
 * fast at 4k and slower at 1k, 256 and 512 slower at both.
 */
const ATTENTION_CHUNK = 128;

/** (G·n, n): 0 on and below each of G stacked n×n diagonals, −∞ above (cached per n). */
const triangles = new Map<string, Float32Array>();
function causalTriangle(G: number, n: number): Float32Array {
  const key = `${G}/${n}`;
  let tri = triangles.get(key);
  if (tri === undefined) {
    tri = new Float32Array(G * n * n);
    for (let r = 0; r < G * n; r++) tri.fill(-Infinity, r * n + (r % n) + 1, (r + 1) * n);
    triangles.set(key, tri);
  }
  return tri;
}

/**
 * Rows per run of the layer sessions in prefill, so that a block's activations (2F floats a
 * row) stay in the L2 cache: at 4,096 rows moa-tiny's MLP ran at half the speed of 1,024.
 */
const ROWS_PER_RUN = 512;

/** A float32 tensor over the first values of `a` that fill `dims` (no copy). */
function f32(a: Float32Array, dims: number[]): Tensor {
  const n = dims.reduce((p, d) => p * d, 1);
  return tensor("float32", a.length === n ? a : a.subarray(0, n), dims);
}

/** One onnxruntime session on the binding, run synchronously with bound outputs. */
class Graph {
  readonly #session: Session;

  constructor(bytes: Uint8Array, options: Record<string, unknown>) {
    this.#session = new lib!.binding.InferenceSession();
    this.#session.loadModel(
      bytes.buffer as ArrayBuffer,
      bytes.byteOffset,
      bytes.byteLength,
      options,
    );
  }

  /** Runs the graph, writing each output into the tensor given for it. */
  run(feeds: Feeds, outputs: Feeds): void {
    this.#session.run(feeds, outputs, {});
  }
}

/** Each engine's session options (its thread count). */
const sessionOptions = new WeakMap<NativeEngine, Record<string, unknown>>();

/** A session of a graph written with {@link GraphBuilder}, with the engine's options. */
function sessionOf(e: NativeEngine, g: GraphBuilder): Graph {
  return new Graph(g.model("moa-native", 17, true), sessionOptions.get(e)!);
}

/** onnxruntime-node's CPU library as an engine; see the module notes. */
export class NativeEngine implements Engine {
  readonly name: string;
  readonly #linear: Graph;
  readonly #product: Graph;
  readonly #attend = new Map<string, Graph>();

  private constructor(readonly threads: number) {
    this.name = `ort-native×${threads}`;
    sessionOptions.set(this, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
      executionProviders: ["cpu"],
      // idle threads sleep instead of spinning: on a shared machine (parallel tests, a job on
      // the other core) spinning threads made every run several times slower here
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    });
    this.#linear = sessionOf(this, productGraph("NativeEngine", true));
    this.#product = sessionOf(this, productGraph("NativeEngine", false));
  }

  /**
   * Loads onnxruntime-node; throws where its binary does not load.
   * @param threads intra-op threads @default min(4, cores)
   */
  static async create(
    threads: number = Math.min(4, navigator.hardwareConcurrency || 1),
  ): Promise<NativeEngine> {
    await load();
    return new NativeEngine(threads);
  }

  /** out = x · wᵀ (Gemm with transB). */
  readonly matmulT: Engine["matmulT"] = (out, x, w, M, K, N) => {
    this.#linear.run({ a: f32(x, [M, K]), b: f32(w, [N, K]) }, { y: f32(out, [M, N]) });
    return Promise.resolve();
  };

  /** out = a · b (MatMul). */
  readonly matmul: Engine["matmul"] = (out, a, b, M, K, N) => {
    this.#product.run({ a: f32(a, [M, K]), b: f32(b, [K, N]) }, { y: f32(out, [M, N]) });
    return Promise.resolve();
  };

  /**
   * Causal attention in blocks of {@link ATTENTION_CHUNK} queries, one session run each over
   * the head-major k and v read in place (sliced to the block's keys inside the session): per kv
   * head, its G query heads' rows are one product against the keys (scaled FusedMatMul), plus a
   * causal mask that is zero up to the block and a triangle over it (Pad of a G-tiled triangle),
   * softmax, values.
   */
  readonly attention: Engine["attention"] = (out, q, K, V, d) => {
    const { T, NH, NKV, HS, first } = d;
    const G = NH / NKV, cap = d.cap ?? d.S;
    const session = this.#blocked(NKV, G, HS);
    const k = f32(K, [NKV, cap, HS]), v = f32(V, [NKV, cap, HS]);
    for (let t0 = 0; t0 < T; t0 += ATTENTION_CHUNK) {
      const n = Math.min(ATTENTION_CHUNK, T - t0), seen = first + t0; // keys before the block
      session.run({
        q: f32(q.subarray(t0 * NH * HS, (t0 + n) * NH * HS), [n, NKV, G, HS]),
        k,
        v,
        tri: f32(causalTriangle(G, n), [G * n, n]),
        pads: tensor("int64", BigInt64Array.of(0n, BigInt(seen), 0n, 0n), [4]),
        ends: tensor("int64", BigInt64Array.of(BigInt(seen + n)), [1]),
      }, { y: f32(out.subarray(t0 * NH * HS, (t0 + n) * NH * HS), [n, NKV, G, HS]) });
    }
    return Promise.resolve();
  };

  /**
   * Range attention in one session: scores (FusedMatMul, scaled), an additive mask built here
   * from the ranges, softmax, values; with `acc`, the probabilities' column sums come out too.
   * Rows with no visible key are zeroed here (their softmax is NaN); with such rows and `acc`,
   * the engine's products do it ({@link rangeAttentionByProducts}).
   */
  readonly rangeAttention: Engine["rangeAttention"] = (out, q, keys, values, ranges, acc, d) => {
    const { G, T, nk, HS } = d;
    const empty: number[] = [];
    for (let t = 0; t < T; t++) {
      if (ranges[3 * t] === 0 && ranges[3 * t + 2]! <= ranges[3 * t + 1]!) empty.push(t);
    }
    if (acc && empty.length) {
      return rangeAttentionByProducts(this, out, q, keys, values, ranges, acc, d);
    }
    const mask = new Float32Array(T * nk).fill(-Infinity);
    for (let t = 0; t < T; t++) {
      const a = ranges[3 * t]!, b = ranges[3 * t + 1]!, e = ranges[3 * t + 2]!;
      mask.fill(0, t * nk, t * nk + a);
      if (e > b) mask.fill(0, t * nk + b, t * nk + e);
    }
    const feeds = {
      q: f32(q, [G, T, HS]),
      k: f32(keys, [nk, HS]),
      v: f32(values, [nk, HS]),
      mask: f32(mask, [T, nk]),
    };
    if (acc) {
      const sums = new Float32Array(nk);
      this.#ranged(HS, true).run(feeds, { y: f32(out, [G, T, HS]), sums: f32(sums, [nk]) });
      for (let c = 0; c < nk; c++) acc[c]! += sums[c]!;
    } else {
      this.#ranged(HS, false).run(feeds, { y: f32(out, [G, T, HS]) });
    }
    for (const t of empty) {
      for (let i = 0; i < G; i++) out.fill(0, (i * T + t) * HS, (i * T + t + 1) * HS);
    }
    return Promise.resolve();
  };

  /** The range-attention session for a head size, with or without the column sums. */
  #ranged(HS: number, sums: boolean): Graph {
    const key = `ranged/${HS}/${sums}`;
    let s = this.#attend.get(key);
    if (s === undefined) {
      const g = new GraphBuilder("NativeEngine");
      g.input("q", ["G", "T", HS]);
      g.input("k", ["N", HS]);
      g.input("v", ["N", HS]);
      g.input("mask", ["T", "N"]);
      const scores = g.op("FusedMatMul", ["q", "k"], "scores", {
        transB: 1,
        alpha: { f: 1 / Math.sqrt(HS) },
      }, "com.microsoft");
      const p = g.op("Softmax", [g.op("Add", [scores, "mask"])], "p", { axis: -1 });
      g.op("MatMul", [p, "v"], "y");
      g.output("y");
      if (sums) {
        g.op("ReduceSum", [p, g.int64s("axes", [2], [0, 1])], "sums", { keepdims: 0 });
        g.output("sums");
      }
      s = sessionOf(this, g);
      this.#attend.set(key, s);
    }
    return s;
  }

  /** The blocked causal attention session for a head layout. */
  #blocked(NKV: number, G: number, HS: number): Graph {
    const key = `blocked/${NKV}/${G}/${HS}`;
    let s = this.#attend.get(key);
    if (s === undefined) {
      const g = new GraphBuilder("NativeEngine");
      g.input("q", ["T", NKV, G, HS]);
      g.input("k", [NKV, "C", HS]);
      g.input("v", [NKV, "C", HS]);
      g.input("tri", ["GT", "T"]);
      g.input("pads", [4], "int64");
      g.input("ends", [1], "int64");
      const zero = g.int64s("zero", [1], [0]), axis1 = g.int64s("axis1", [1], [1]);
      // (T, NKV, G, HS) → (NKV, G·T, HS): each kv head's query rows in one matrix
      const qt = g.op("Transpose", ["q"], "qt", { perm: [1, 2, 0, 3] });
      const q3 = g.op("Reshape", [qt, g.int64s("rows", [3], [NKV, -1, HS])], "q3");
      const keys = g.op("Slice", ["k", zero, "ends", axis1], "keys");
      const values = g.op("Slice", ["v", zero, "ends", axis1], "values");
      const scores = g.op("FusedMatMul", [q3, keys], "scores", {
        transB: 1,
        alpha: { f: 1 / Math.sqrt(HS) },
      }, "com.microsoft");
      const mask = g.op("Pad", ["tri", "pads"], "mask");
      const p = g.op("Softmax", [g.op("Add", [scores, mask])], "p", { axis: -1 });
      const o = g.op("MatMul", [p, values], "o");
      const o4 = g.op("Reshape", [o, g.int64s("heads", [4], [NKV, G, -1, HS])], "o4");
      g.op("Transpose", [o4], "y", { perm: [2, 0, 1, 3] }); // (T, NKV, G, HS)
      g.output("y");
      s = sessionOf(this, g);
      this.#attend.set(key, s);
    }
    return s;
  }

  /** Its layers run each block as one session run (a float32 model's; see `prepare`). */
  readonly blockKernels = true;

  /**
   * The model's layers as native sessions ({@link nativeKernels}), built once per model; a
   * model with F16/BF16 matrices runs the engine's products over weights widened a block at a
   * time instead (`productKernels`), so it is never copied whole to float32.
   */
  readonly prepare: Engine["prepare"] = preparedOnce((model) =>
    allFloat32(model) ? nativeKernels(this, model) : productKernels(this, model, false)
  );
}

/**
 * One model's linear blocks as onnxruntime sessions with the weights inside; see the module
 * notes. A step runs L + 1 sessions: layer 0's attention inputs, then per layer the rest of it
 * fused with the next layer's attention inputs (or, after the last, with the logits of the rows
 * asked for). Each session has one output: an output costs the binding a JS object per run, about
 * as much as a small product, so fused outputs are concatenated and split here. RoPE is
 * onnxruntime's RotaryEmbedding over cos/sin tables computed here in float64 and stored in the
 * sessions for positions below max(4,096, `maxPositionEmbeddings`); a later position rebuilds
 * the sessions with tables twice as long.
 */
function nativeKernels(e: NativeEngine, model: Model): LayerKernels {
  const { config, weights } = model;
  const { hiddenSize: C, numHeads: NH, numKvHeads: NKV, headDim: HS } = config;
  const F = config.intermediateSize, V = config.vocabSize, L = weights.layers.length;
  const QKV = (NH + 2 * NKV) * HS;
  const invFreq = ropeInvFreq(config);
  const eps = { f: config.rmsNormEps };
  const matrix = (g: GraphBuilder, name: string, w: Float32Array, out: number, inp: number) =>
    g.weight(name, transposed(w, out, inp), [inp, out]);
  /** x + skip, and RMSNorm of it with `gamma`: [normed, sum] (one SkipSimplifiedLayerNormalization). */
  const skipNorm = (
    g: GraphBuilder,
    x: string,
    skip: string,
    gamma: Float32Array,
    name: string,
  ) => {
    g.op(
      "SkipSimplifiedLayerNormalization",
      [x, skip, g.weight(name, gamma, [C])],
      [
        `${name}_out`,
        "",
        "",
        `${name}_sum`,
      ],
      { epsilon: eps },
      "com.microsoft",
    );
    return [`${name}_out`, `${name}_sum`] as const;
  };

  /**
   * Layer l's [q | k] after RoPE and v, from its normed input h (1, T, C); RoPE at `pos` with
   * tables of `rows` positions, q's and k's heads rotated together.
   */
  const addInputs = (g: GraphBuilder, l: number, h: string, rows: number) => {
    const w = weights.layers[l]!;
    const half = HS / 2, cos = new Float32Array(rows * half), sin = new Float32Array(rows * half);
    for (let p = 0; p < rows; p++) {
      for (let i = 0; i < half; i++) {
        const a = p * invFreq[i]!;
        cos[p * half + i] = Math.cos(a);
        sin[p * half + i] = Math.sin(a);
      }
    }
    const tables = [g.weight("cos", cos, [rows, half]), g.weight("sin", sin, [rows, half])];
    let qkv = g.op("MatMul", [h, matrix(g, `wqkv${l}`, stackRows([w.wq, w.wk, w.wv]), QKV, C)]);
    if (w.bq && w.bk && w.bv) {
      qkv = g.op("Add", [qkv, g.weight(`bqkv${l}`, stackRows([w.bq, w.bk, w.bv]), [QKV])]);
    }
    const split = g.int64s("split_qkv", [2], [(NH + NKV) * HS, NKV * HS]);
    g.op("Split", [qkv, split], ["qk", "v"], { axis: 2 });
    const qk = g.op("RotaryEmbedding", ["qk", "pos", ...tables], "qk_rope", {
      interleaved: 0,
      num_heads: NH + NKV,
    }, "com.microsoft");
    return [qk, "v"];
  };

  /**
   * The rest of layer l from x and the attention output (1, T, ·), with the next RMSNorm (gamma:
   * the next layer's input norm or the final norm) fused into the last residual: [normed, y].
   */
  const addOutput = (g: GraphBuilder, l: number, x: string, att: string, gamma: Float32Array) => {
    const w = weights.layers[l]!;
    const proj = g.op("MatMul", [att, matrix(g, `wo${l}`, w.wo, C, NH * HS)]);
    const [h, x1] = skipNorm(g, x, proj, w.postNorm, `post_norm${l}`);
    const gu = g.op("MatMul", [h, matrix(g, `wgu${l}`, stackRows([w.wGate, w.wUp]), 2 * F, C)]);
    g.op("Split", [gu, g.int64s("split_gu", [2], [F, F])], ["gate", "up"], { axis: 2 });
    const act = g.op("QuickGelu", ["gate"], "silu", { alpha: { f: 1 } }, "com.microsoft");
    const down = g.op("MatMul", [g.op("Mul", [act, "up"]), matrix(g, `wdown${l}`, w.wDown, C, F)]);
    return skipNorm(g, x1, down, gamma, "next_norm");
  };

  /**
   * Session of layer 0's inputs (l = −1: x → [q | k | v]) or of layer l's rest plus what follows
   * it (x, att → [x | q | k | v] of the next layer, or the last layer's logits). Activations are
   * (1, T, ·) so that MatMul (pre-packed (in, out) weights) and RotaryEmbedding need no reshapes.
   */
  const session = (l: number, rows: number) => {
    const g = new GraphBuilder(`NativeEngine layer ${l}`);
    g.input("x", [1, "T", C]);
    if (l < 0) {
      g.input("pos", [1, "T"], "int64");
      const h = g.op(
        "SimplifiedLayerNormalization",
        [
          "x",
          g.weight("input_norm0", weights.layers[0]!.inputNorm, [C]),
        ],
        "h",
        { axis: -1, epsilon: eps },
      );
      g.output(g.op("Concat", addInputs(g, 0, h, rows), "out", { axis: 2 }));
      return sessionOf(e, g);
    }
    g.input("att", [1, "T", NH * HS]);
    if (l + 1 < L) {
      g.input("pos", [1, "T"], "int64");
      const [h, y] = addOutput(g, l, "x", "att", weights.layers[l + 1]!.inputNorm);
      g.output(g.op("Concat", [y, ...addInputs(g, l + 1, h, rows)], "out", { axis: 2 }));
    } else {
      const [h] = addOutput(g, l, "x", "att", weights.finalNorm);
      g.output(g.op("MatMul", [h, matrix(g, "lm_head", weights.lmHead, V, C)], "out"));
    }
    return sessionOf(e, g);
  };

  let ropeRows = Math.max(4096, config.maxPositionEmbeddings);
  const build = () => Array.from({ length: L + 1 }, (_, i) => session(i - 1, ropeRows));
  let sessions = build();
  let positionsAt: Int32Array | null = null;
  let pos = new BigInt64Array(0);
  /**
   * The step's positions as int64 tensors of row blocks (converted once per step); positions
   * past the RoPE tables rebuild the sessions.
   */
  const positionTensor = (positions: Int32Array, T: number) => {
    if (positions !== positionsAt) {
      let maxPos = 0;
      pos = new BigInt64Array(T);
      for (let t = 0; t < T; t++) {
        maxPos = Math.max(maxPos, positions[t]!);
        pos[t] = BigInt(positions[t]!);
      }
      if (maxPos >= ropeRows) {
        while (ropeRows <= maxPos) ropeRows *= 2;
        sessions = build();
      }
      positionsAt = positions;
    }
    const p = pos;
    return (t0: number, n: number) =>
      tensor("int64", n === p.length ? p : p.subarray(t0, t0 + n), [1, n]);
  };

  /** Runs `f(t0, n)` over blocks of at most ROWS_PER_RUN rows. */
  const blocks = (T: number, f: (t0: number, n: number) => void) => {
    for (let t0 = 0; t0 < T; t0 += ROWS_PER_RUN) f(t0, Math.min(ROWS_PER_RUN, T - t0));
  };
  const rowsOf = (a: Float32Array, width: number, t0: number, n: number) =>
    a.subarray(t0 * width, (t0 + n) * width);

  return {
    attentionInputs(l, x, positions, T, q, k, v) {
      if (l !== 0) throw new RangeError(`NativeEngine: attentionInputs of layer ${l}; only 0`);
      const qkv = new Float32Array(T * QKV);
      const pos = positionTensor(positions, T);
      blocks(T, (t0, n) => {
        sessions[0]!.run({ x: f32(rowsOf(x, C, t0, n), [1, n, C]), pos: pos(t0, n) }, {
          out: f32(rowsOf(qkv, QKV, t0, n), [1, n, QKV]),
        });
      });
      splitColumns(qkv, T, [[q, NH * HS], [k, NKV * HS], [v, NKV * HS]]);
      return Promise.resolve();
    },
    attentionOutput(l, x, att, T, next) {
      if ("q" in next) {
        if (l + 1 >= L) throw new RangeError(`NativeEngine: layer ${l} is the last`);
        const y = new Float32Array(T * (C + QKV));
        const pos = positionTensor(next.positions, T);
        blocks(T, (t0, n) => {
          sessions[l + 1]!.run({
            x: f32(rowsOf(x, C, t0, n), [1, n, C]),
            att: f32(rowsOf(att, NH * HS, t0, n), [1, n, NH * HS]),
            pos: pos(t0, n),
          }, { out: f32(rowsOf(y, C + QKV, t0, n), [1, n, C + QKV]) });
        });
        splitColumns(y, T, [[x, C], [next.q, NH * HS], [next.k, NKV * HS], [next.v, NKV * HS]]);
        return Promise.resolve();
      }
      if (l + 1 !== L) throw new RangeError(`NativeEngine: logits after layer ${l}, not the last`);
      // only the rows asked for go through the last layer's MLP and the output projection
      const R = next.rows.length;
      const xr = new Float32Array(R * C), ar = new Float32Array(R * NH * HS);
      next.rows.forEach((r, i) => {
        xr.set(rowsOf(x, C, r, 1), i * C);
        ar.set(rowsOf(att, NH * HS, r, 1), i * NH * HS);
      });
      blocks(R, (t0, n) => {
        sessions[L]!.run({
          x: f32(rowsOf(xr, C, t0, n), [1, n, C]),
          att: f32(rowsOf(ar, NH * HS, t0, n), [1, n, NH * HS]),
        }, { out: f32(rowsOf(next.logits, V, t0, n), [1, n, V]) });
      });
      return Promise.resolve();
    },
  };
}
