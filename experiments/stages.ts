/**
 * The stages of one experiment's cells, each stored in the run's cache under a hash of its
 * inputs (experiments/cache.ts): the LongEval and RULER cases of a length, the profile of a
 * length, the plan of a MoA method at a density, DuoAttention's gates, and each cell's metrics.
 *
 * ```
 * model ──► cases(length), ruler cases(length) ─────────────────► cell(longeval), cell(ruler)
 *   ├──► calibrate → profile(length) → optimise → validate ─► plan(method, density) ─► cell(…)
 *   ├──► duo gates (trained, or a published pattern) ─► rules(density, length) ──────► cell(…)
 *   ├────────────────────────────────────────────────────────────────────► cell(perplexity)
 *   └────────────────────────────────────────────────────────────────────► cell(throughput)
 * ```
 *
 * (A cell of a MoA method takes its plan; calibrate → validate is `makePlan`, solver/pipeline.ts.
 * A duo cell binarises the gates at its density and length, `duoRules` in runtime/duo.ts.)
 *
 * @module
 */
import { CALIBRATION_VERSION } from "../data/calibration.ts";
import { brownText } from "../data/brown.ts";
import {
  type Metric,
  runLongEval,
  runPerplexity,
  runRuler,
  runThroughput,
} from "../data/benchmarks.ts";
import type { LongEvalCase } from "../data/longeval/longeval.ts";
import type { RulerCase } from "../data/ruler/ruler.ts";
import { writeFileAtomic } from "../runtime/atomic.ts";
import { cacheFactory, promptDensity } from "../runtime/cpu/method_cache.ts";
import { duoBudget, duoRules, formatDuoGates, loadDuoPattern } from "../runtime/duo.ts";
import type { SparsePlan } from "../runtime/spans.ts";
import { type DuoGates, trainDuoGates } from "../solver/duo.ts";
import { sessionDecoder } from "../runtime/decoder.ts";
import { hashOf } from "../runtime/hash.ts";
import {
  cacheOf,
  isMoa,
  type Method,
  type MethodSpec,
  type MoaMethod,
  planRecipe,
  scoringChunk,
} from "../runtime/methods.ts";
import { type ModelConfig, widenModel } from "../runtime/model.ts";
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
  validDuoGates,
  validPlan,
  validProfile,
  validRulerCases,
} from "./artifacts.ts";
import type { ArtifactStore } from "./cache.ts";
import { casesOrRefusal, rulerCasesOrRefusal } from "./preflight.ts";
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
  #duo: Promise<DuoSource> | null = null;

  /** @param ctx what the stages share */
  constructor(readonly ctx: StageContext) {}

  /** The key of a length's generated LongEval (or RULER) cases. */
  casesKey(length: number, benchmark: "longeval" | "ruler" = "longeval"): Promise<string> {
    const { exp, fingerprint } = this.ctx;
    return hashOf({
      stage: benchmark === "ruler" ? "ruler-cases" : "cases",
      v: 1,
      fingerprint,
      length,
      ...(benchmark === "ruler"
        ? { ruler: exp.benchmarks.ruler }
        : { le: exp.benchmarks.longeval }),
      seed: exp.seed,
    });
  }

  /**
   * The key of DuoAttention's gates: the training settings, or the published pattern's content
   * (so a changed file is not mistaken for the old one).
   */
  async duoKey(): Promise<string> {
    const { exp, fingerprint, config } = this.ctx;
    const duo = exp.duo!;
    const pattern = duo.pattern ? await loadDuoPattern(duo.pattern, config) : null;
    return hashOf({
      stage: "duo",
      v: 1,
      fingerprint,
      ...(pattern ? { pattern } : { duo, sink: exp.profile.sink, seed: exp.seed }),
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
      cases: c.benchmark === "longeval" || c.benchmark === "ruler"
        ? await this.casesKey(c.length, c.benchmark)
        : null,
      plan: isMoa(c.method)
        ? await this.planKey(c.method, c.density)
        : c.method === "duo"
        ? await this.duoKey()
        : null,
      // 2: H2O's budget is a share of the prompt, no longer of prompt + answer
      h2o: cacheOf(c.method) === "h2o" ? 2 : undefined,
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
    const plan = isMoa(c.method)
      ? await this.plan(s, c.method, c.density, log)
      : c.method === "duo"
      ? await this.duoRules(s, c, log)
      : undefined;
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
          profileDevice: s.backend === "webgpu" ? "webgpu" : "cpu",
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

  /**
   * DuoAttention's rules for a cell: the gates (imported, or trained once per run and cached)
   * binarised at the cell's density and length (`duoRules`).
   */
  async duoRules(s: Session, c: Cell, log: (l: string) => void): Promise<SparsePlan> {
    const { gates, sink, minRecent } = await (this.#duo ??= this.#duoSource(s, log));
    const heads = gates.length * gates[0]!.length;
    const { retrieval, recent } = duoBudget(heads, c.density, c.length, sink, minRecent);
    log(
      `duo at ${c.density} × ${c.length} tokens: ${retrieval} of ${heads} kv heads keep ` +
        `everything, the others ${sink} + ${recent} tokens`,
    );
    return duoRules(gates, c.density, c.length, sink, minRecent);
  }

  async #duoSource(s: Session, log: (l: string) => void): Promise<DuoSource> {
    const { exp, store, config, out } = this.ctx;
    const duo = exp.duo!;
    if (duo.pattern) {
      const p = await loadDuoPattern(duo.pattern, config);
      const sink = p.sink ?? exp.profile.sink;
      return { gates: p.gates, sink, minRecent: p.recent ?? 2 * sink };
    }
    const train = () =>
      trainDuoGates(widenModel(s.cpu.model), s.tokenizer, s.bos, {
        steps: duo.steps,
        lr: duo.lr,
        reg: duo.reg,
        length: duo.length,
        sink: exp.profile.sink,
        recent: duo.recent,
        keys: 10,
        seed: exp.seed,
      }, log);
    const trained: DuoGates = this.ctx.noCache
      ? await train()
      : (await store.getOrCompute("duo", await this.duoKey(), train, (v) =>
        validDuoGates(v, config)))
        .value;
    // the published layout, so another run can import these gates (duo: {pattern: …})
    await writeFileAtomic(
      `${out}/plans/duo/full_attention_heads.tsv`,
      formatDuoGates(trained.gates),
    );
    await writeFileAtomic(
      `${out}/plans/duo/config.json`,
      JSON.stringify(
        { sink_size: exp.profile.sink, recent_size: duo.recent, ...duo, pattern: undefined },
        null,
        2,
      ) +
        "\n",
    );
    return { gates: trained.gates, sink: exp.profile.sink, minRecent: duo.recent };
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
    plan: SparsePlan | undefined,
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
        metrics.push(await this.#density(s, spec, cases[0]?.prompt));
        return { metrics, backend: decoder.backend, cases: await caseOutcomes(outcomes) };
      }
      case "ruler": {
        const cases = await this.#rulerCases(s, c.length);
        const outcomes: { c: RulerCase; score: number }[] = [];
        const metrics = await runRuler(s, cases, decoder, tick, (c, score) => {
          outcomes.push({ c, score });
        });
        metrics.push(await this.#density(s, spec, cases[0]?.prompt));
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

  /**
   * `kv_density`: the share of the prompt's KV entries the method keeps (`promptDensity`),
   * measured on the cell's first prompt with the method's CPU cache; missing without a prompt.
   */
  async #density(s: Session, spec: MethodSpec, prompt: string | undefined): Promise<Metric> {
    if (prompt === undefined) return { metric: "kv_density", value: NaN, n: 0 };
    const kept = await promptDensity(s.cpu, cacheFactory(s.cpu, spec), promptTokens(s, prompt));
    return { metric: "kv_density", value: kept, n: 1 };
  }

  /** The generated RULER cases of a length, from the cache or made now. */
  async #rulerCases(s: Session, length: number): Promise<RulerCase[]> {
    const { exp, store } = this.ctx;
    const r = exp.benchmarks.ruler!;
    const make = () =>
      Promise.resolve(
        rulerCasesOrRefusal(`lengths[${exp.lengths.indexOf(length)}]: ${length} tokens`, {
          tasks: r.tasks,
          count: r.cases,
          targetLength: length,
          seed: exp.seed,
          countTokens: (t: string) => promptTokens(s, t).length,
        }),
      );
    if (this.ctx.noCache) return make();
    const key = await this.casesKey(length, "ruler");
    return (await store.getOrCompute("cases", key, make, validRulerCases)).value;
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

/** DuoAttention's gates and the streaming heads' sink and least recent window. */
interface DuoSource {
  gates: number[][];
  sink: number;
  minRecent: number;
}

/** Each case's outcome, with a hash of what it asked (so pairs are the same case). */
async function caseOutcomes(
  outcomes: ({ c: LongEvalCase; correct: boolean } | { c: RulerCase; score: number })[],
): Promise<CaseOutcome[]> {
  return await Promise.all(outcomes.map(async (o) => ({
    id: o.c.id,
    hash: await hashOf({ prompt: o.c.prompt, expected: o.c.expected }),
    score: "correct" in o ? (o.correct ? 1 : 0) : o.score,
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
