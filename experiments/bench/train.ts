/**
 * `deno task bench train`: the trainer's gradient ({@linkcode lossAndGrad} in
 * `runtime/autodiff/jax_model.ts`) at each sequence length two ways side by side, one jitted
 * program over the whole model against layer by layer with recomputation and blocked attention
 * (`layerwise: true`), on one core (jax-js on WebAssembly, calling thread) or on a GPU
 * (`device: "webgpu"`, where `programBytes` sets how much memory the one program may take). Rounds are
 * interleaved (both ways at every length once per round, the median of the rounds kept), so a
 * ratio is not skewed by a change of machine state. Where the one program would need more memory
 * than WebAssembly's 4 GiB (`needsLayerwise`), only the layer-by-layer way runs. Each row also
 * gives the two losses' difference: the two ways compute the same function.
 *
 * @module
 */
import { loadModel } from "../../runtime/hf.ts";
import type { Model } from "../../runtime/model.ts";
import {
  disposeParams,
  initJax,
  type JaxDevice,
  lossAndGrad,
  needsLayerwise,
  type Params,
  paramsFromModel,
} from "../../runtime/autodiff/jax_model.ts";
import { Rng } from "../../runtime/rng.ts";

/** One sequence length of {@linkcode benchTrain}. */
export interface TrainBenchRow {
  /** tokens per sequence */
  T: number;
  /** sequences per step */
  B: number;
  /** tokens/s of the one program; NaN where it does not fit (see `one_program_fits`) */
  one_program_tokens_per_s: number;
  /** tokens/s layer by layer */
  layerwise_tokens_per_s: number;
  /** layer by layer ÷ one program (NaN where the one program does not run) */
  layerwise_vs_one: number;
  /** whether the one program fits (`needsLayerwise` is false), so `"auto"` takes it */
  one_program_fits: boolean;
  /** |loss(one program) − loss(layer by layer)|, NaN where the one program does not run */
  loss_difference: number;
  /** seconds of the first step of each way (compilation included), one program / layer by layer */
  first_step_s: string;
}

/** Options of {@linkcode benchTrain}. */
export interface TrainBenchOptions {
  /** a model folder, or the model itself */
  model: string | Model;
  /** sequence lengths (tokens per sequence) */
  lengths: number[];
  /** sequences per step (default 1) */
  batch?: number;
  /** timed rounds after the first (compiling) step of each way (default 3) */
  rounds?: number;
  /** jax-js device (default wasm) */
  device?: JaxDevice;
  /** the one program's memory budget (`InitOptions.programBytes`; default 3 GiB) */
  programBytes?: number;
  /** called with a line after every measured step */
  log?: (line: string) => void;
}

/** A batch of random tokens with the loss on every position, seeded by its length. */
function randomBatch(vocab: number, B: number, T: number) {
  const rng = new Rng(T);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(3, vocab - 1));
  const targets = Int32Array.from({ length: B * T }, (_, i) => tokens[(i + 1) % (B * T)]!);
  return { tokens, targets, mask: new Float32Array(B * T).fill(1) };
}

/** Seconds and loss of one gradient step (the gradients are dropped). */
async function timedStep(
  model: Model,
  params: Params,
  B: number,
  T: number,
  layerwise: boolean,
): Promise<{ s: number; loss: number }> {
  const batch = randomBatch(model.config.vocabSize, B, T);
  const t = performance.now();
  const { loss, grads } = await lossAndGrad(model.config, params, batch, B, T, { layerwise });
  disposeParams(grads);
  return { s: (performance.now() - t) / 1000, loss };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * Measures the trainer's gradient one program against layer by layer at each length.
 * @returns one row per length, in the order given
 */
export async function benchTrain(opts: TrainBenchOptions): Promise<TrainBenchRow[]> {
  const B = opts.batch ?? 1, rounds = opts.rounds ?? 3, log = opts.log ?? (() => {});
  await initJax(opts.device ?? "wasm", {
    ...(opts.programBytes ? { programBytes: opts.programBytes } : {}),
  });
  const model = typeof opts.model === "string" ? await loadModel(opts.model) : opts.model;
  const params = paramsFromModel(model);
  try {
    const ways = opts.lengths.map((T) => ({
      T,
      fits: !needsLayerwise(model.config, B, T),
      one: [] as number[],
      layer: [] as number[],
      first: [NaN, NaN],
      loss: [NaN, NaN],
    }));
    for (let round = 0; round <= rounds; round++) {
      for (const w of ways) {
        for (const layerwise of [false, true]) {
          if (!layerwise && !w.fits) continue;
          const { s, loss } = await timedStep(model, params, B, w.T, layerwise);
          const k = layerwise ? 1 : 0;
          if (round === 0) {
            w.first[k] = s;
            w.loss[k] = loss;
          } else (layerwise ? w.layer : w.one).push(s);
          log(
            `T = ${w.T}: ${layerwise ? "layer by layer" : "one program"}, ` +
              `${round === 0 ? "first step" : `round ${round}/${rounds}`} ${s.toFixed(2)} s`,
          );
        }
      }
    }
    return ways.map((w) => {
      const one = w.fits ? (B * w.T) / median(w.one) : NaN;
      const layer = (B * w.T) / median(w.layer);
      return {
        T: w.T,
        B,
        one_program_tokens_per_s: one,
        layerwise_tokens_per_s: layer,
        layerwise_vs_one: layer / one,
        one_program_fits: w.fits,
        loss_difference: Math.abs(w.loss[0]! - w.loss[1]!),
        first_step_s: `${w.fits ? w.first[0]!.toFixed(1) : "–"} / ${w.first[1]!.toFixed(1)}`,
      };
    });
  } finally {
    disposeParams(params);
  }
}
