/**
 * DuoAttention's gate optimisation (DESIGN.md §4.6), on this project's jax-js model: every kv
 * head gets a gate α ∈ [0, 1] that mixes its full attention with streaming attention (the sink
 * and a recent window); only the gates are trained, on synthetic passkey prompts
 * (`passkeySample` in data/ruler/ruler.ts: several keys hidden in filler, the answer listing their
 * values), to keep the final hidden states at the answer's positions where the full model has
 * them, with an L1 penalty that pulls every gate toward streaming:
 *
 * ```text
 * loss = Σ_t w_t · mean_c (h_t(α) − h_t(1))² + reg · mean(|α|)
 * ```
 *
 * AdamW without weight decay, the learning rate warmed up over the first fifth of the steps and
 * cooled over the last fifth (to 0.1×), gates clamped to [0, 1] before every step, all starting
 * at 1 — the settings of DuoAttention's published runs (lr 0.02, reg 0.05) by default. The
 * gates are binarised at a run's density by `duoRules` (runtime/duo.ts).
 *
 * @module
 */
import { passkeySample } from "../data/ruler/ruler.ts";
import {
  disposeParams,
  duoDistillGrad,
  initJax,
  paramsFromModel,
} from "../runtime/autodiff/jax_model.ts";
import type { Model } from "../runtime/model.ts";
import type { TextTokenizer } from "../runtime/tokenizer.ts";

/** Settings of {@link trainDuoGates}. */
export interface DuoTraining {
  /** Optimiser steps, one sample each. */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  /** Weight of the L1 penalty on the gates. */
  reg: number;
  /** Tokens per training sample. */
  length: number;
  /** Leading tokens a streaming head sees in training. */
  sink: number;
  /** Recent tokens a streaming head sees in training. */
  recent: number;
  /** Passkeys hidden in each sample (all asked). */
  keys: number;
  /** Seed of the samples. */
  seed: number;
}

/** The defaults of {@link DuoTraining} that do not depend on the run. */
export const DUO_DEFAULTS = { steps: 100, lr: 0.02, reg: 0.05, length: 1024, keys: 10 } as const;

/** Trained gates and how the loss went. */
export interface DuoGates {
  /** [layer][kv head], in [0, 1]. */
  gates: number[][];
  /** Per step: the distillation loss and the penalty (before the step's update). */
  history: { step: number; distill: number; reg: number }[];
}

/** One training sample: tokens and the answer positions' weights. */
function sample(
  tokenizer: TextTokenizer,
  bos: number | null,
  o: DuoTraining,
  step: number,
): { tokens: Int32Array; mask: Float32Array } {
  const seed = o.seed * 1_000_003 + step;
  const encode = (size: number) => {
    const s = passkeySample(size, o.keys, seed);
    const ids = [...(bos === null ? [] : [bos]), ...tokenizer.encode(s.text)];
    const answerAt = (bos === null ? 0 : 1) +
      tokenizer.encode(s.text.slice(0, s.answerStart)).length;
    return { ids, answerAt };
  };
  // the most filler sentences that fit the length (the answer included)
  let lo = 1, hi = 2;
  if (encode(lo).ids.length > o.length) {
    throw new RangeError(`trainDuoGates: ${o.length} tokens cannot hold ${o.keys} passkeys`);
  }
  while (encode(hi).ids.length <= o.length) [lo, hi] = [hi, 2 * hi];
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (encode(mid).ids.length <= o.length) lo = mid;
    else hi = mid;
  }
  const { ids, answerAt } = encode(lo);
  // the hidden states that predict the answer's tokens; padding after the answer (masked, and
  // unseen by earlier positions) gives every sample the same length, so one program serves all
  const mask = Float32Array.from(
    { length: o.length },
    (_, t) => (t >= answerAt - 1 && t < ids.length - 1 ? 1 : 0),
  );
  const tokens = new Int32Array(o.length).fill(ids.at(-1)!);
  tokens.set(ids);
  return { tokens, mask };
}

/**
 * Optimises DuoAttention's gates for a model (see the module documentation).
 *
 * @param model the model (its weights are not changed)
 * @param tokenizer its tokenizer
 * @param bos the beginning-of-sequence token, or null
 * @param o the training settings
 * @param log one line per tenth of the run
 * @returns the gates, [layer][kv head], and the loss history
 */
export async function trainDuoGates(
  model: Model,
  tokenizer: TextTokenizer,
  bos: number | null,
  o: DuoTraining,
  log: (line: string) => void = () => {},
): Promise<DuoGates> {
  const { numLayers: L, numKvHeads: NKV } = model.config;
  const n = L * NKV;
  await initJax("wasm");
  const params = paramsFromModel(model);
  const g = new Float32Array(n).fill(1), m = new Float64Array(n), v = new Float64Array(n);
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const ramp = Math.max(1, Math.floor(o.steps / 5));
  const history: DuoGates["history"] = [];
  try {
    for (let step = 0; step < o.steps; step++) {
      for (let i = 0; i < n; i++) g[i] = Math.min(1, Math.max(0, g[i]!));
      const { tokens, mask } = sample(tokenizer, bos, o, step);
      const { loss, grad } = await duoDistillGrad(model.config, params, g, tokens, mask, {
        sink: o.sink,
        recent: o.recent,
      });
      const reg = g.reduce((a, x) => a + Math.abs(x), 0) / n;
      history.push({ step, distill: loss, reg });
      const lr = o.lr *
        Math.min(1, Math.max((step + 1) / ramp, 0.1), Math.max((o.steps - step) / ramp, 0.1));
      for (let i = 0; i < n; i++) {
        const d = grad[i]! + (o.reg * Math.sign(g[i]!)) / n;
        m[i] = b1 * m[i]! + (1 - b1) * d;
        v[i] = b2 * v[i]! + (1 - b2) * d * d;
        const mh = m[i]! / (1 - b1 ** (step + 1)), vh = v[i]! / (1 - b2 ** (step + 1));
        g[i]! -= (lr * mh) / (Math.sqrt(vh) + eps);
      }
      if ((step + 1) % Math.max(1, Math.floor(o.steps / 10)) === 0) {
        log(
          `duo gates: step ${step + 1}/${o.steps}, distill ${loss.toExponential(3)}, ` +
            `mean gate ${reg.toFixed(3)}`,
        );
      }
    }
  } finally {
    disposeParams(params);
  }
  const gates = Array.from(
    { length: L },
    (_, l) => Array.from(g.subarray(l * NKV, (l + 1) * NKV), (x) => Math.min(1, Math.max(0, x))),
  );
  return { gates, history };
}
