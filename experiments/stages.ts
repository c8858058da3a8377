/**
 * The stages of one experiment's cells, each stored in the run's cache under a hash of its
 * inputs (experiments/cache.ts): the LongEval cases of a length, the profile of a length, the
 * plan of a MoA method at a density, and each cell's metrics.
 *
 * ```
 * model ──► cases(length) ─────────────────────────────────────────────► cell(longeval)
 *   ├──► calibrate → profile(length) → optimise → validate ─► plan(method, density) ─► cell(…)
 *   ├────────────────────────────────────────────────────────────────────► cell(perplexity)
 *   └────────────────────────────────────────────────────────────────────► cell(throughput)
 * ```
 *
 * (A cell of a MoA method takes its plan; calibrate → validate is `makePlan`, solver/pipeline.ts.)
 *
 * @module
 */
import { CALIBRATION_VERSION } from "../data/calibration.ts";
import { brownText } from "../data/brown.ts";
import { type Metric, runLongEval, runPerplexity, runThroughput } from "../data/benchmarks.ts";
import type { LongEvalCase } from "../data/longeval/longeval.ts";
import { cacheFactory } from "../runtime/cpu/method_cache.ts";
import { sessionDecoder } from "../runtime/decoder.ts";
import { hashOf } from "../runtime/hash.ts";
import {
  isMoa,
  type Method,
  type MethodSpec,
  type MoaMethod,
  planRecipe,
  scoringChunk,
} from "../runtime/methods.ts";
import type { ModelConfig } from "../runtime/model.ts";
import { promptTokens, type Session } from "../runtime/session.ts";
import {
  loadInfluence,
  makePlan,
  type ProfileCache,
  type StoredInfluence,
  storeInfluence,
} from "../solver/pipeline.ts";
import { type Plan, writePlan } from "../solver/plan.ts";
import {
  type CaseOutcome,
  type CellArtifact,
  validCases,
  validCell,
  validPlan,
  validProfile,
} from "./artifacts.ts";
import type { ArtifactStore } from "./cache.ts";
import { casesOrRefusal } from "./preflight.ts";
import type { Cell, Experiment } from "./schema.ts";

/** Bump when a change alters what a cell measures, so old cached cells are not reused. */
const CELL_VERSION = 1;

/** What the stages of a run share. */
export interface StageContext {
  /** The experiment, every default filled. */
  exp: Experiment;
  /** The model's content fingerprint: part of every key. */
  fingerprint: string;
  /** The model's config, to check stored profiles and plans against. */
  config: ModelConfig;
  /** The cases of a LongEval `file`, or null when cases are generated. */
  fileCases: LongEvalCase[] | null;
  /** The artifact cache. */
  store: ArtifactStore;
  /** Recompute every stage (results are still stored). */
  noCache: boolean;
  /** The output folder (plans are written to `<out>/plans/`). */
  out: string;
}

/** Reports progress inside a stage: `done` of `total` items. */
export type Tick = (done: number, total: number) => void;

/** The stages of one run's cells: their cache keys and how each is computed. */
export class CellStages {
  readonly #plans = new Map<string, Promise<Plan>>();

  /** @param ctx what the stages share */
  constructor(readonly ctx: StageContext) {}

  /** The key of a length's generated LongEval cases. */
  casesKey(length: number): Promise<string> {
    const { exp, fingerprint } = this.ctx;
    return hashOf({
      stage: "cases",
      v: 1,
      fingerprint,
      length,
      le: exp.benchmarks.longeval,
      seed: exp.seed,
    });
  }

  /** The key of a cell's metrics: everything the cell's measurement depends on. */
  async cellKey(c: Cell): Promise<string> {
    const { exp, fingerprint } = this.ctx;
    const chunk = scoringChunk(c.method);
    return hashOf({
      stage: "cell",
      v: CELL_VERSION,
      fingerprint,
      method: c.method,
      density: c.density,
      length: c.length,
      benchmark: c.benchmark,
      settings: exp.benchmarks[c.benchmark],
      // absent (so old cells still hit) unless the chunk differs from the original 1,024
      chunk: c.benchmark === "perplexity" && chunk !== 1024 ? chunk : undefined,
      cases: c.benchmark === "longeval" ? await this.casesKey(c.length) : null,
      plan: isMoa(c.method) ? await this.planKey(c.method, c.density) : null,
      seed: exp.seed,
      backend: exp.backend,
      // absent under the default per-query spans, so cells cached before the option still hit
      spans: exp.spans === "reference" && c.method === "streaming" ? exp.spans : undefined,
    });
  }

  /** The key of a MoA plan: the model, the profile settings, the serving length, the density. */
  planKey(method: Method, density: number): Promise<string> {
    const { exp, fingerprint } = this.ctx;
    return hashOf({
      method,
      stage: "plan",
      // 5: Pareto plans compared at every profiled length, and MoA's candidates include the
      // `head` search's static windows (2–4 were intermediate versions of this session);
      // 6: the profiler charges the band the plan's span semantics applies (was the static band)
      v: 6,
      calibration: CALIBRATION_VERSION,
      fingerprint,
      density,
      spans: exp.spans,
      // the default influence is left out of the key, so plans cached before it existed still hit
      profile: exp.profile.influence === "abs"
        ? { ...exp.profile, influence: undefined }
        : exp.profile,
      serving: Math.max(...exp.lengths),
      seed: exp.seed,
    });
  }

  /** A cell's stored metrics, or null (also when the run ignores the cache). */
  async cached(c: Cell): Promise<CellArtifact | null> {
    if (this.ctx.noCache) return null;
    return await this.ctx.store.get("cell", await this.cellKey(c), (v) => validCell(v, c));
  }

  /**
   * Measures a cell: its plan first for a MoA method, then its benchmark, and stores the result.
   * @param s the loaded model
   * @param c the cell
   * @param tick inner progress
   * @param log one-line notices of the plan's stages
   * @returns what the cache stores for the cell
   */
  async measure(
    s: Session,
    c: Cell,
    tick: Tick,
    log: (line: string) => void,
  ): Promise<CellArtifact> {
    const started = new Date().toISOString();
    const plan = isMoa(c.method) ? await this.plan(s, c.method, c.density, log) : undefined;
    const { metrics, backend, cases } = await this.#benchmark(s, c, plan, tick);
    const art: CellArtifact = {
      metrics,
      backend,
      device: backend === s.backend ? s.device : `cpu ${navigator.hardwareConcurrency} cores`,
      started_at: started,
      ...(cases ? { cases } : {}),
    };
    await this.ctx.store.put("cell", await this.cellKey(c), art);
    return art;
  }

  /**
   * The plan of a MoA method at a density: cached, or made by the MoA chain (calibrate,
   * profile, optimise, validate), and written to `<out>/plans/`. One promise per plan, so cells
   * that share it wait for one computation.
   */
  plan(s: Session, method: MoaMethod, density: number, log: (l: string) => void): Promise<Plan> {
    const id = `${method}@${density}`;
    let p = this.#plans.get(id);
    if (!p) {
      p = this.#makeOrLoadPlan(s, method, density, log);
      this.#plans.set(id, p);
    }
    return p;
  }

  async #makeOrLoadPlan(
    s: Session,
    method: MoaMethod,
    density: number,
    log: (l: string) => void,
  ): Promise<Plan> {
    const { exp, store, config } = this.ctx;
    const make = async () =>
      (await makePlan(
        s.cpu,
        s.tokenizer,
        exp.model,
        {
          density,
          lengths: exp.profile.lengths,
          servingLength: Math.max(...exp.lengths),
          samples: exp.profile.samples,
          block: exp.profile.block,
          sink: exp.profile.sink,
          influence: exp.profile.influence,
          spans: exp.spans,
          seed: exp.seed,
          ...planRecipe(method),
        },
        log,
        this.#profileCache,
      )).plan;
    const key = await this.planKey(method, density);
    const plan = this.ctx.noCache
      ? await make()
      : (await store.getOrCompute("plan", key, make, (v) => validPlan(v, config))).value;
    await writePlan(`${this.ctx.out}/plans/${method}-d${density}.json`, plan);
    return plan;
  }

  /** Each length's profile, shared by every density, search space and method that asks for it. */
  readonly #profileCache: ProfileCache = async (key, compute) => {
    const { fingerprint, store, config } = this.ctx;
    if (this.ctx.noCache) return await compute();
    const k = await hashOf({ stage: "profile", v: 1, fingerprint, ...key });
    const { value } = await store.getOrCompute<StoredInfluence>(
      "profile",
      k,
      async () => storeInfluence(await compute()),
      (v) => validProfile(v, config),
    );
    return loadInfluence(value);
  };

  /** Runs a cell's benchmark with its method. */
  async #benchmark(
    s: Session,
    c: Cell,
    plan: Plan | undefined,
    tick: Tick,
  ): Promise<{ metrics: Metric[]; backend: string; cases?: CaseOutcome[] }> {
    const { exp } = this.ctx;
    const spec: MethodSpec = {
      method: c.method,
      density: c.density,
      sink: exp.profile.sink,
      ...(plan ? { plan } : {}),
      spans: exp.spans,
      block: exp.profile.block,
    };
    const decoder = sessionDecoder(s, spec);
    switch (c.benchmark) {
      case "longeval": {
        const fileCases = this.ctx.fileCases;
        const cases = fileCases
          ? bucketByLength(s, fileCases, exp.lengths, c.length)
          : await this.#cases(s, c.length);
        const outcomes: { c: LongEvalCase; correct: boolean }[] = [];
        const metrics = await runLongEval(s, cases, decoder, tick, (c, correct) => {
          outcomes.push({ c, correct });
        });
        return { metrics, backend: decoder.backend, cases: await caseOutcomes(outcomes) };
      }
      case "perplexity":
        return {
          metrics: await runPerplexity(
            s,
            await brownText("heldout"),
            c.length,
            exp.benchmarks.perplexity!.tokens,
            cacheFactory(s.cpu, spec),
            tick,
            scoringChunk(c.method),
          ),
          backend: "cpu",
        };
      case "throughput": {
        const t = exp.benchmarks.throughput!;
        return {
          metrics: await runThroughput(s, c.length, t.decode, t.batch, exp.seed, decoder, tick),
          backend: decoder.backend,
        };
      }
    }
  }

  /** The generated LongEval cases of a length, from the cache or made now. */
  async #cases(s: Session, length: number): Promise<LongEvalCase[]> {
    const { exp, store } = this.ctx;
    const le = exp.benchmarks.longeval!;
    const make = () =>
      Promise.resolve(
        casesOrRefusal(
          `lengths[${exp.lengths.indexOf(length)}]: ${length} tokens`,
          "a LongEval case",
          {
            count: "cases" in le ? le.cases : 0,
            targetLength: length,
            seed: exp.seed,
            countTokens: (t: string) => promptTokens(s, t).length,
          },
        ),
      );
    if (this.ctx.noCache) return make();
    return (await store.getOrCompute("cases", await this.casesKey(length), make, validCases)).value;
  }
}

/** Each LongEval case's outcome, with a hash of what it asked (so pairs are the same case). */
async function caseOutcomes(
  outcomes: { c: LongEvalCase; correct: boolean }[],
): Promise<CaseOutcome[]> {
  return await Promise.all(outcomes.map(async ({ c, correct }) => ({
    id: c.id,
    hash: await hashOf({ prompt: c.prompt, expected: c.expected }),
    score: correct ? 1 : 0,
  })));
}

/**
 * Cases from a file, assigned to length levels: a case belongs to the smallest listed length
 * that its prompt fits in; cases longer than every level are dropped.
 */
function bucketByLength(
  s: Session,
  cases: LongEvalCase[],
  lengths: number[],
  level: number,
): LongEvalCase[] {
  const sorted = [...lengths].sort((a, b) => a - b);
  const below = sorted.filter((l) => l < level).at(-1) ?? 0;
  return cases.filter((c) => {
    const n = promptTokens(s, c.prompt).length; // our tokenizer, not the file's token_size
    return n > below && n <= level;
  });
}
