/**
 * The whole MoA chain for one model and density: calibrate → profile → optimise (Pareto set) →
 * validate at a longer length → plan (DESIGN.md §3.3–§3.7).
 *
 * @module
 */
import {
  buildCalibration,
  CALIBRATION_VERSION,
  type CalibrationKind,
  type CalibrationSample,
  describeCalibration,
} from "../data/calibration.ts";
import type { InfluenceDevice } from "../runtime/autodiff/influence.ts";
import type { CpuModel } from "../runtime/cpu/forward.ts";
import { MoaKvCache } from "../runtime/cpu/sparse_cache.ts";
import type { TextTokenizer } from "../runtime/tokenizer.ts";
import { densityProblemFromRules, type Solution } from "./problem.ts";
import { paretoSet } from "./pareto.ts";
import { type Plan, planFromChoice } from "./plan.ts";
import { type BlockInfluence, profileInfluence, ruleLosses } from "./profile.ts";
import { bandModeOf, candidateRules, type Rule } from "./rules.ts";
import { checkReferenceGrid, type SpanSemantics, type SparsePlan } from "../runtime/spans.ts";

/** What a plan is made from. */
export interface PlanSettings {
  /** Mean KV-cache density budget in (0, 1]. */
  density: number;
  /** Profiled lengths (one objective each). */
  lengths: number[];
  /** The longest length the plan serves (density is constrained there too). */
  servingLength: number;
  /** Calibration samples per length. */
  samples: number;
  /** Block size in tokens of the profile and of the density count. */
  block: number;
  /** Tokens every head keeps at the start. */
  sink: number;
  /**
   * The influence estimate: "abs" sums |E| (the reference's), "signed" sums E, the first-order
   * loss change. @default "abs"
   */
  influence?: "abs" | "signed";
  /**
   * The span semantics the plan will run with (`runtime/spans.ts`). The profiler charges each
   * rule the band that semantics' caches apply (`bandModeOf`), the density rows count what they
   * keep, and validation runs them. @default "per-query"
   */
  spans?: SpanSemantics;
  /** Seed of the calibration and validation samples. */
  seed: number;
  /** Where calibration responses come from. @default "model" (the dense model's own) */
  calibration?: CalibrationKind;
  /** At most this many distinct rules among each layer's kv heads. @default 2 (the reference's) */
  maxDistinctPerLayer?: number;
  /**
   * The longest length where Pareto plans are compared; they are also compared at every profiled
   * length, by their mean masked loss. @default min(servingLength, 1.5 × longest profiled)
   */
  validationLength?: number;
  /** Seconds per MILP. @default 60 */
  timeLimit?: number;
  /**
   * Where the profile's gradients run: the CPU engine, or jax-js on WebAssembly or WebGPU.
   * @default "cpu"
   */
  profileDevice?: InfluenceDevice;
  /**
   * The search space (the paper's ablation): `elastic` per-head α + β·N rules (MoA);
   * `head` a static window per head (β = 0); `layer` one static window per layer; `uniform`
   * one static window for every head. @default "elastic"
   */
  search?: PlanSearch;
}

/**
 * Where `makePlan` keeps the profile of each length (calibrate + profile are most of a plan's
 * time, and every density, search space and method of an experiment shares them). `key` holds
 * everything the profile depends on besides the model, which the store adds.
 */
export type ProfileCache = (
  key: Record<string, unknown>,
  compute: () => Promise<BlockInfluence>,
) => Promise<BlockInfluence>;

/** A block influence as JSON (its typed arrays as plain arrays), for a {@link ProfileCache}. */
export interface StoredInfluence extends Omit<BlockInfluence, "values"> {
  values: number[][][];
}

/** {@link BlockInfluence} → JSON-ready form. */
export function storeInfluence(inf: BlockInfluence): StoredInfluence {
  return { ...inf, values: inf.values.map((l) => l.map((v) => Array.from(v))) };
}

/** JSON form → {@link BlockInfluence}. */
export function loadInfluence(s: StoredInfluence): BlockInfluence {
  return { ...s, values: s.values.map((l) => l.map((v) => Float64Array.from(v))) };
}

/** Search spaces of `makePlan`, from the most constrained to MoA's. */
export type PlanSearch = "uniform" | "layer" | "head" | "elastic";

/** A plan and how it was chosen. */
export interface PlanResult {
  /** The chosen plan (lowest validation loss). */
  plan: Plan;
  /**
   * Every Pareto plan: its profiled-loss objectives, its measured validation loss, and its mean
   * density at each length of the problem's density rows (`density@<length>` → value).
   */
  pareto: { objectives: number[]; validationLoss: number; densities: Record<string, number> }[];
}

/**
 * Masked mean negative log-likelihood of samples run through MoA caches with a plan.
 * @returns nats per response token
 */
export async function validationLoss(
  cpu: CpuModel,
  plan: SparsePlan,
  samples: CalibrationSample[],
): Promise<number> {
  const V = cpu.model.config.vocabSize;
  let s = 0, w = 0;
  for (const x of samples) {
    const T = x.tokens.length;
    const cache = new MoaKvCache(cpu.model.config, plan, T);
    const logits = (await cpu.step([{ cache, tokens: x.tokens }], "all"))[0]!;
    for (let t = 0; t < T; t++) {
      const m = x.mask[t]!;
      if (!m) continue;
      let mx = -Infinity;
      for (let v = 0; v < V; v++) mx = Math.max(mx, logits[t * V + v]!);
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(logits[t * V + v]! - mx);
      s += m * -(logits[t * V + x.targets[t]!]! - mx - Math.log(z));
      w += m;
    }
  }
  return s / Math.max(w, 1e-12);
}

/**
 * Runs the chain.
 * @param cpu the dense model on the CPU (calibration responses, validation)
 * @param tok its tokenizer
 * @param modelName recorded in the plan
 * @param log progress lines
 * @param cache keeps each length's profile (default: none, everything is computed)
 */
export async function makePlan(
  cpu: CpuModel,
  tok: TextTokenizer,
  modelName: string,
  s: PlanSettings,
  log: (line: string) => void = () => {},
  cache: ProfileCache = (_key, compute) => compute(),
): Promise<PlanResult> {
  const config = cpu.model.config;
  const NKV = config.numKvHeads;
  const lengths = [...s.lengths].sort((a, b) => a - b);
  const kind = s.calibration ?? "model";
  const search = s.search ?? "elastic";
  const spans = s.spans ?? "per-query";
  if (spans === "reference") checkReferenceGrid(s.sink, s.block, "makePlan");
  const allRules: Rule[] = candidateRules(lengths, s.servingLength);
  // static windows (β = 0) get small spans too, one block at a time up to the grid's step (so low
  // budgets stay feasible at the shortest length), and spans up to the serving length
  const staticRules = (): Rule[] => {
    const alphas = new Set(allRules.filter((r) => r.beta === 0).map((r) => r.alpha));
    const step = lengths[0]! / 2;
    for (let a = s.block; a < step; a += s.block) alphas.add(a);
    for (let a = step; a <= s.servingLength; a += step) alphas.add(a);
    return [...alphas].sort((x, y) => x - y).map((alpha) => ({ alpha, beta: 0 }));
  };
  // MoA's rules include every static window of the `head` search, so the ablation's search
  // spaces nest (at 25% density on moa-tiny, elastic rules alone had no window under 64 tokens
  // at 512 and scored 0.08 on LongEval at 1,024 where static windows per head scored 0.32)
  const rules = search === "elastic"
    ? [
      ...allRules,
      ...staticRules().filter((r) => !allRules.some((q) => q.alpha === r.alpha && q.beta === 0)),
    ]
    : staticRules();
  const losses: number[][][] = [];
  for (const N of lengths) {
    const signed = s.influence === "signed";
    const key = {
      length: N,
      samples: s.samples,
      seed: s.seed,
      kind,
      block: s.block,
      signed,
      calibration: CALIBRATION_VERSION,
    };
    const inf = await cache(key, async () => {
      log(`calibrate: ${s.samples} samples of ${N} tokens (${kind} responses)`);
      const samples = await buildCalibration(cpu, tok, {
        length: N,
        samples: s.samples,
        seed: s.seed,
        kind,
      });
      for (const line of describeCalibration(samples)) log(`calibrate: ${line}`);
      log(`profile: attention influence at ${N} tokens, block ${s.block}`);
      return await profileInfluence(cpu.model, samples, s.block, {
        signed,
        device: s.profileDevice ?? "cpu",
        engine: cpu.engine,
      });
    });
    losses.push(ruleLosses(inf, rules, s.sink, bandModeOf(spans)));
  }
  // heads tied together choose together: their losses add up (groups are equal in size, so the
  // mean density over groups is the mean over heads)
  const H = config.numLayers * NKV;
  const groupOf = (
    h: number,
  ) => (search === "uniform" ? 0 : search === "layer" ? Math.floor(h / NKV) : h);
  const groups = search === "uniform" ? 1 : search === "layer" ? config.numLayers : H;
  const grouped = losses.map((perHead) => {
    const g = Array.from({ length: groups }, () => new Array<number>(rules.length).fill(0));
    perHead.forEach((row, h) => row.forEach((x, r) => (g[groupOf(h)]![r]! += x)));
    return g;
  });
  const tied = search === "uniform" || search === "layer";
  const problem = densityProblemFromRules({
    rules,
    losses: grouped,
    profileLengths: lengths,
    servingLength: s.servingLength,
    sink: s.sink,
    block: s.block,
    spans,
    budget: s.density,
    ...(tied ? {} : {
      headsPerLayer: NKV,
      maxDistinctPerLayer: Math.min(s.maxDistinctPerLayer ?? 2, rules.length),
    }),
    // a static window cannot hold the same density at every length: it only has to fit the budget
    ...(search === "elastic" ? {} : { lowerFraction: 0 }),
  });
  log(
    `optimize (${search}): ${groups} groups of kv heads × ${rules.length} rules, density ${s.density}`,
  );
  const pareto: Solution[] = await paretoSet(problem, { gap: 1e-3, timeLimit: s.timeLimit ?? 60 });
  const vLen = s.validationLength ?? Math.min(s.servingLength, Math.round(1.5 * lengths.at(-1)!));
  // every profiled length as well as the longer one: a plan serves all of them, and a plan picked
  // at 2,048 alone scored 0.30 at 512 where dense scores 0.80 (moa-tiny, 50% density)
  const vLengths = [...new Set([...lengths, vLen])].sort((a, b) => a - b);
  log(`validate: ${pareto.length} Pareto plans at ${vLengths.join(", ")} tokens`);
  const vSamples: CalibrationSample[][] = [];
  for (const N of vLengths) {
    vSamples.push(
      await buildCalibration(cpu, tok, {
        length: N,
        samples: s.samples,
        seed: s.seed + 1,
        kind,
      }),
    );
  }
  const meta = {
    model: modelName,
    sink: s.sink,
    block: s.block,
    density: s.density,
    lengths,
    servingLength: s.servingLength,
    spans,
  };
  const scored: { sol: Solution; plan: Plan; validationLoss: number }[] = [];
  for (const sol of pareto) {
    const choice = Array.from({ length: H }, (_, h) => sol.choice[groupOf(h)]!);
    const plan = planFromChoice(rules, choice, NKV, meta);
    let sum = 0;
    for (const samples of vSamples) sum += await validationLoss(cpu, plan, samples);
    scored.push({ sol, plan, validationLoss: sum / vSamples.length });
  }
  scored.sort((a, b) => a.validationLoss - b.validationLoss);
  const best = scored[0]!;
  // each Pareto plan's mean density at every density row (the solver's constraint values come
  // first, in the problem's order, before any ε constraint), for reports (experiments/report/)
  const densitiesOf = (sol: Solution) =>
    Object.fromEntries(
      problem.constraints.map((c, i) => [c.name, sol.constraintValues[i]! / groups]),
    );
  const front = scored.map((x) => ({
    objectives: x.sol.objectives,
    validationLoss: x.validationLoss,
    densities: densitiesOf(x.sol),
  }));
  best.plan.provenance = {
    created_at: new Date().toISOString(),
    calibration: kind,
    search,
    samples: s.samples,
    seed: s.seed,
    objectives: best.sol.objectives,
    validation_lengths: vLengths,
    validation_loss: best.validationLoss,
    pareto_plans: scored.length,
    // the whole Pareto set, lowest validation loss (the chosen plan) first
    pareto: front.map((x) => ({
      objectives: x.objectives,
      validation_loss: x.validationLoss,
      densities: x.densities,
    })),
  };
  return { plan: best.plan, pareto: front };
}
