/**
 * The profiler's validity check: does the predicted loss increase of applying one rule to one
 * kv head (everything else dense) rank like the measured one? Reports the Spearman correlation
 * over random (head, rule) pairs; the target on moa-tiny is ≥ 0.8 over ≥ 100 pairs. Two
 * predictions are ranked: the profiler's (block tiles, the reference's band at length N) and a
 * token-level one that drops exactly what the cache drops (each query's window at its own
 * length), which tells a profiling-resolution error from a first-order-approximation one.
 *
 * @module
 */
import { buildCalibration, type CalibrationKind } from "../data/calibration.ts";
import type { CpuModel } from "../runtime/cpu/forward.ts";
import type { TextTokenizer } from "../runtime/tokenizer.ts";
import { Rng } from "../runtime/rng.ts";
import { validationLoss } from "./pipeline.ts";
import { profileInfluence, ruleLosses } from "./profile.ts";
import { candidateRules, droppedTokenInfluence } from "./rules.ts";

/** Spearman rank correlation (average ranks for ties). */
export function spearman(a: readonly number[], b: readonly number[]): number {
  const rank = (xs: readonly number[]) => {
    const idx = xs.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(xs.length);
    for (let k = 0; k < idx.length;) {
      let e = k;
      while (e + 1 < idx.length && idx[e + 1]![0] === idx[k]![0]) e++;
      for (let m = k; m <= e; m++) r[idx[m]![1]] = (k + e) / 2;
      k = e + 1;
    }
    return r;
  };
  const ra = rank(a), rb = rank(b);
  const mean = (r: number[]) => r.reduce((x, y) => x + y, 0) / r.length;
  const ma = mean(ra), mb = mean(rb);
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < ra.length; i++) {
    num += (ra[i]! - ma) * (rb[i]! - mb);
    da += (ra[i]! - ma) ** 2;
    db += (rb[i]! - mb) ** 2;
  }
  return num / Math.sqrt(da * db);
}

/** One checked pair. */
export interface ValidityPair {
  /** The head's layer. */
  layer: number;
  /** The kv head within the layer. */
  kvHead: number;
  /** The rule's α, in tokens. */
  alpha: number;
  /** The rule's β. */
  beta: number;
  /** the profiler's prediction: influence of the dropped tiles (the reference's static band) */
  predicted: number;
  /** the same with each query block's band at its own length (`elastic`) */
  predictedElastic: number;
  /** the same at token level with each query's own window, as the cache applies it */
  predictedToken: number;
  /** the token-level first-order loss change: Σ E (signed) over what the cache drops */
  predictedSigned: number;
  /** the profiler's prediction with `influence: signed`: Σ E over the dropped tiles */
  predictedBlockSigned: number;
  /** The measured loss increase: masked NLL with the rule on this head minus dense, in nats. */
  measured: number;
}

/**
 * Predicted vs measured loss increase for `pairs` random (kv head, rule) pairs at length N.
 * @returns the pairs and their Spearman correlation
 */
export async function validityCheck(
  cpu: CpuModel,
  tok: TextTokenizer,
  o: {
    length: number;
    samples: number;
    pairs: number;
    block: number;
    sink: number;
    seed: number;
    calibration?: CalibrationKind;
  },
  onPair: (done: number) => void = () => {},
): Promise<
  {
    pairs: ValidityPair[];
    spearman: number;
    spearmanElastic: number;
    spearmanToken: number;
    spearmanSigned: number;
    spearmanBlockSigned: number;
  }
> {
  const config = cpu.model.config;
  const { numLayers: L, numKvHeads: NKV } = config;
  const samples = await buildCalibration(cpu, tok, {
    length: o.length,
    samples: o.samples,
    seed: o.seed,
    kind: o.calibration ?? "model",
  });
  const m = cpu.model, engine = cpu.engine;
  const inf = await profileInfluence(m, samples, o.block, { engine });
  const tokenInf = await profileInfluence(m, samples, 1, { engine });
  const blockSignedInf = await profileInfluence(m, samples, o.block, { engine, signed: true });
  const signedInf = await profileInfluence(m, samples, 1, { engine, signed: true });
  const rules = candidateRules([Math.floor(o.length / 2), o.length], 2 * o.length);
  const predicted = ruleLosses(inf, rules, o.sink);
  const predictedElastic = ruleLosses(inf, rules, o.sink, "elastic");
  const predictedBlockSigned = ruleLosses(blockSignedInf, rules, o.sink);
  const full = { sink: o.sink, alphas: grid(L, NKV, o.length), betas: grid(L, NKV, 1) };
  const base = await validationLoss(cpu, full, samples);
  const rng = new Rng(o.seed);
  const out: ValidityPair[] = [];
  for (let k = 0; k < o.pairs; k++) {
    const layer = rng.int(0, L - 1), kvHead = rng.int(0, NKV - 1), r = rng.int(0, rules.length - 1);
    const rule = rules[r]!;
    const plan = { sink: o.sink, alphas: grid(L, NKV, o.length), betas: grid(L, NKV, 1) };
    plan.alphas[layer]![kvHead] = rule.alpha;
    plan.betas[layer]![kvHead] = rule.beta;
    const measured = (await validationLoss(cpu, plan, samples)) - base;
    out.push({
      layer,
      kvHead,
      alpha: rule.alpha,
      beta: rule.beta,
      predicted: predicted[layer * NKV + kvHead]![r]!,
      predictedElastic: predictedElastic[layer * NKV + kvHead]![r]!,
      predictedToken: droppedTokenInfluence(
        rule,
        o.length,
        o.sink,
        tokenInf.values[layer]![kvHead]!,
      ),
      predictedSigned: droppedTokenInfluence(
        rule,
        o.length,
        o.sink,
        signedInf.values[layer]![kvHead]!,
      ),
      predictedBlockSigned: predictedBlockSigned[layer * NKV + kvHead]![r]!,
      measured,
    });
    onPair(k + 1);
  }
  return {
    pairs: out,
    spearman: spearman(out.map((p) => p.predicted), out.map((p) => p.measured)),
    spearmanElastic: spearman(out.map((p) => p.predictedElastic), out.map((p) => p.measured)),
    spearmanToken: spearman(out.map((p) => p.predictedToken), out.map((p) => p.measured)),
    spearmanSigned: spearman(out.map((p) => p.predictedSigned), out.map((p) => p.measured)),
    spearmanBlockSigned: spearman(
      out.map((p) => p.predictedBlockSigned),
      out.map((p) => p.measured),
    ),
  };
}

function grid(L: number, NKV: number, v: number): number[][] {
  return Array.from({ length: L }, () => new Array<number>(NKV).fill(v));
}
