/**
 * Runs an experiment: expands it into cells, runs each cell's stages with their artifacts cached
 * by a hash of their inputs, and writes `experiment.resolved.json` and `metrics.csv`.
 *
 * Stage graph today (later issues add calibrate → profile → optimize → validate before moa):
 * ```
 * model ──► cases(length) ──► cell(longeval)
 *   ├────────────────────────► cell(perplexity)
 *   └────────────────────────► cell(throughput)
 * ```
 *
 * @module
 */
import { generateCases, type LongEvalCase, readLongEvalJsonl } from "../data/longeval/longeval.ts";
import { brownText } from "../data/brown.ts";
import { writeFileAtomic } from "../runtime/atomic.ts";
import { loadTokenizer } from "../runtime/tokenizer.ts";
import { InputError } from "../runtime/errors.ts";
import { ArtifactStore, hashOf } from "./cache.ts";
import {
  type Metric,
  runLongEval,
  runPerplexity,
  runThroughput,
  sessionMethod,
} from "./benchmarks.ts";
import { type AttentionMethod, cacheFactory, scoringChunk } from "../runtime/cpu/methods.ts";
import {
  loadInfluence,
  makePlan,
  type PlanSettings,
  type ProfileCache,
  type StoredInfluence,
  storeInfluence,
} from "../solver/pipeline.ts";
import { type Plan, writePlan } from "../solver/plan.ts";
import { type Row, writeMetricsCsv } from "./csv.ts";
import { createProgress, type Progress } from "./progress.ts";
import { type Cell, expandCells, type Experiment, type Method } from "./schema.ts";
import {
  modelFingerprint,
  openSession,
  promptTokens,
  resolveModelDir,
  type Session,
} from "./session.ts";

/**
 * Methods whose stages do not exist yet, with the reason given to the user. A method leaves this
 * table when its stages land.
 */
export const UNAVAILABLE_METHODS: Partial<Record<Method, string>> = {};

/** The MoA methods: how each variant's plan is searched and calibrated (the paper's ablations). */
export const MOA_VARIANTS = {
  moa: { search: "elastic", calibration: "model" },
  "moa-uniform": { search: "uniform", calibration: "model" },
  "moa-layer": { search: "layer", calibration: "model" },
  "moa-head": { search: "head", calibration: "model" },
  "moa-ref": { search: "elastic", calibration: "reference" },
  "moa-ctx": { search: "elastic", calibration: "context" },
} as const satisfies Record<string, Pick<PlanSettings, "search" | "calibration">>;

/** A method that runs with a MoA plan. */
export type MoaMethod = keyof typeof MOA_VARIANTS;

/** Whether a method runs with a MoA plan. */
export function isMoa(m: Method): m is MoaMethod {
  return m in MOA_VARIANTS;
}

/** Longest profiled length the WebAssembly profiler can hold (measured: 1.2 GB at 2048). */
export const MAX_PROFILE_LENGTH = 2048;

/** Tokens per perplexity step of a cell's method (`scoringChunk`). */
function pplChunk(c: Cell): number {
  return scoringChunk(isMoa(c.method) ? "moa" : c.method as AttentionMethod);
}

/** Bump when a change alters what a cell measures, so old cached cells are not reused. */
const CELL_VERSION = 1;

/** `--shard i/n`: this process runs the cells whose index ≡ i (mod n). */
export interface Shard {
  /** i, in 0 .. count − 1. */
  index: number;
  /** n, the number of shards. */
  count: number;
}

/** Options of `runExperiment`. */
export interface RunOptions {
  /** Output folder. */
  out: string;
  /** Continue the run recorded in `out`; fails when `out` holds none or another experiment. */
  resume?: boolean;
  /** Run only this shard's cells. @default null (every cell) */
  shard?: Shard | null;
  /** Print the cells and whether each is cached; write nothing. */
  dryRun?: boolean;
  /** Artifact cache folder. @default `<out>/../.cache` */
  cacheDir?: string;
  /** Ignore cached artifacts (they are still written). */
  noCache?: boolean;
  /** Progress display. @default bar on a TTY, lines otherwise */
  progress?: Progress;
  /** One-line notices. @default stderr */
  notice?: (line: string) => void;
  /** The experiment file, named in error messages. */
  source?: string;
  /** The commit the code came from. @default from git */
  gitSha?: string;
}

/** What `experiment.resolved.json` holds. */
export interface ResolvedRun {
  /** The experiment's name plus a hash of the resolved experiment and the model. */
  run_id: string;
  /** The experiment with every default filled. */
  experiment: Experiment;
  /** The model folder. */
  model_dir: string;
  /** A hash of the model folder's content (config, tokenizer, weights). */
  model_fingerprint: string;
  /** Every cell of the grid, with its index in expansion order. */
  cells: (Cell & { index: number })[];
  /** The shard this folder holds, or null for the whole grid. */
  shard: Shard | null;
  /** The commit the code came from (`-dirty` when the tree had changes). */
  git_sha: string;
}

/** The result of a run. */
export interface RunResult {
  /** What `experiment.resolved.json` holds. */
  resolved: ResolvedRun;
  /** The rows of `metrics.csv`. */
  rows: Row[];
  /** Cells that came from the cache. */
  cachedCells: number;
}

/**
 * Checks everything that can be checked before any output is written: methods and backend
 * available, model folder present, LongEval file readable.
 * @throws InputError naming the field and what is wrong
 */
export async function preflight(
  exp: Experiment,
  source?: string,
): Promise<{ modelDir: string; fileCases: LongEvalCase[] | null }> {
  try {
    return await checkInputs(exp);
  } catch (e) {
    if (e instanceof InputError && source) throw new InputError(`${source}: ${e.message}`);
    throw e;
  }
}

async function checkInputs(
  exp: Experiment,
): Promise<{ modelDir: string; fileCases: LongEvalCase[] | null }> {
  exp.methods.forEach((m, i) => {
    const why = UNAVAILABLE_METHODS[m];
    if (why) {
      throw new InputError(
        `methods[${i}]: method '${m}' is not available yet: ${why}; available: ${
          availableMethods().join(", ")
        }`,
      );
    }
  });
  if (exp.methods.some(isMoa)) {
    // calibration prompts leave room for a response of up to 48 tokens
    const tokenizer = await loadTokenizer(await resolveModelDir(exp.model));
    exp.profile.lengths.forEach((n, i) => {
      try {
        generateCases({
          count: 1,
          targetLength: n - 48,
          seed: exp.seed,
          countTokens: (t) => tokenizer.encode(t).length + 1,
        });
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        throw new InputError(
          `profile.lengths[${i}]: ${n} tokens cannot hold a calibration prompt and its answer for this model: ${e.message}`,
        );
      }
    });
    exp.profile.lengths.forEach((n, i) => {
      if (n > MAX_PROFILE_LENGTH) {
        throw new InputError(
          `profile.lengths[${i}]: ${n} tokens exceed the ${MAX_PROFILE_LENGTH} the CPU profiler can hold ` +
            `(jax-js keeps every layer's T×T attention in 4 GiB of WebAssembly memory); profile shorter lengths`,
        );
      }
    });
  }
  const modelDir = await resolveModelDir(exp.model);
  const le = exp.benchmarks.longeval;
  let fileCases: LongEvalCase[] | null = null;
  if (le && "file" in le) {
    fileCases = await readLongEvalJsonl(le.file);
    if (le.limit !== null) fileCases = fileCases.slice(0, le.limit);
  } else if (le) {
    // every length must hold at least a two-line LongEval prompt in this model's tokens
    const tokenizer = await loadTokenizer(modelDir);
    const countTokens = (t: string) => tokenizer.encode(t).length + 1; // + BOS
    exp.lengths.forEach((length, i) => {
      try {
        generateCases({ count: 1, targetLength: length, seed: exp.seed, countTokens });
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        throw new InputError(
          `lengths[${i}]: ${length} tokens cannot hold a LongEval case for this model: ${e.message}`,
        );
      }
    });
  }
  return { modelDir, fileCases };
}

/** Methods that can run today. */
export function availableMethods(): Method[] {
  return (["dense", "moa", "streaming", "h2o"] as Method[]).filter((m) => !UNAVAILABLE_METHODS[m]);
}

/** The short commit id of the code, with `-dirty` when the tree has changes; "unknown" outside git. */
export async function gitSha(): Promise<string> {
  const root = new URL("..", import.meta.url).pathname;
  const run = async (args: string[]) => {
    const out = await new Deno.Command("git", { args, cwd: root, stdout: "piped", stderr: "null" })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  };
  try {
    const sha = await run(["rev-parse", "--short=12", "HEAD"]);
    if (!sha) return "unknown";
    const dirty = await run(["status", "--porcelain", "--untracked-files=no"]);
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return "unknown";
  }
}

/**
 * The run id: the experiment name and a hash of the resolved experiment and the model's content,
 * so equal inputs give equal ids on every machine (shards of one grid share it).
 */
export async function runIdOf(exp: Experiment, fingerprint?: string): Promise<string> {
  const fp = fingerprint ?? await modelFingerprint(await resolveModelDir(exp.model));
  return `${exp.name}-${(await hashOf({ exp, fingerprint: fp })).slice(0, 8)}`;
}

/** Parses `i/n` with 0 ≤ i < n. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) {
    throw new InputError(`--shard: expected i/n with 0 ≤ i < n (e.g. 0/4), got '${text}'`);
  }
  return { index, count };
}

/**
 * Runs an experiment and writes its outputs.
 *
 * @param exp a validated experiment (see `loadExperiment`)
 * @param opts output folder, resume, shard, dry run
 * @returns the resolved run and its rows
 */
export async function runExperiment(exp: Experiment, opts: RunOptions): Promise<RunResult> {
  const notice = opts.notice ?? ((l: string) => console.error(l));
  const { modelDir, fileCases } = await preflight(exp, opts.source);
  const fingerprint = await modelFingerprint(modelDir);
  const runId = await runIdOf(exp, fingerprint);
  const allCells = expandCells(exp).map((c, index) => ({ ...c, index }));
  const shard = opts.shard ?? null;
  const cells = shard ? allCells.filter((c) => c.index % shard.count === shard.index) : allCells;
  const resolved: ResolvedRun = {
    run_id: runId,
    experiment: exp,
    model_dir: modelDir,
    model_fingerprint: fingerprint,
    cells: allCells,
    shard,
    git_sha: opts.gitSha ?? await gitSha(),
  };
  await checkOutDir(opts.out, runId, opts.resume ?? false);
  const store = new ArtifactStore(opts.cacheDir ?? `${opts.out}/../.cache`);

  const casesKey = (length: number) =>
    hashOf({
      stage: "cases",
      v: 1,
      fingerprint,
      length,
      le: exp.benchmarks.longeval,
      seed: exp.seed,
    });
  const cellKey = async (c: Cell) =>
    hashOf({
      stage: "cell",
      v: CELL_VERSION,
      fingerprint,
      method: c.method,
      density: c.density,
      length: c.length,
      benchmark: c.benchmark,
      settings: exp.benchmarks[c.benchmark],
      // absent (so old cells still hit) unless the chunk differs from the original 1,024
      chunk: c.benchmark === "perplexity" && pplChunk(c) !== 1024 ? pplChunk(c) : undefined,
      cases: c.benchmark === "longeval" ? await casesKey(c.length) : null,
      plan: isMoa(c.method) ? await planKey(c.method, c.density) : null,
      seed: exp.seed,
      backend: exp.backend,
    });
  // the moa plan of a density: depends on the model, the profile settings and the serving length
  const planKey = (method: Method, density: number) =>
    hashOf({
      method,
      stage: "plan",
      // 5: Pareto plans compared at every profiled length, and MoA's candidates include the
      // `head` search's static windows (2–4 were intermediate versions of this session)
      v: 5,
      fingerprint,
      density,
      // the default influence is left out of the key, so plans cached before it existed still hit
      profile: exp.profile.influence === "abs"
        ? { ...exp.profile, influence: undefined }
        : exp.profile,
      serving: Math.max(...exp.lengths),
      seed: exp.seed,
    });
  // each length's profile is shared by every density, search space and method that asks for it
  const profileCache: ProfileCache = async (key, compute) => {
    if (opts.noCache) return await compute();
    const k = await hashOf({ stage: "profile", v: 1, fingerprint, ...key });
    const { value } = await store.getOrCompute<StoredInfluence>(
      "profile",
      k,
      async () => storeInfluence(await compute()),
    );
    return loadInfluence(value);
  };
  const plans = new Map<string, Promise<Plan>>();
  const planFor = (
    s: Session,
    method: MoaMethod,
    density: number,
    log: (l: string) => void,
  ): Promise<Plan> => {
    let p = plans.get(`${method}@${density}`);
    if (!p) {
      p = (async () => {
        const key = await planKey(method, density);
        const make = async () =>
          (await makePlan(
            s.runner,
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
              seed: exp.seed,
              ...MOA_VARIANTS[method],
            },
            log,
            profileCache,
          )).plan;
        const plan = opts.noCache
          ? await make()
          : (await store.getOrCompute("plan", key, make)).value;
        await writePlan(`${opts.out}/plans/${method}-d${density}.json`, plan);
        return plan;
      })();
      plans.set(`${method}@${density}`, p);
    }
    return p;
  };

  if (opts.dryRun) {
    for (const c of cells) {
      const hit = !opts.noCache && (await store.get("cell", await cellKey(c))) !== null;
      console.log(`${String(c.index).padStart(4)}  ${c.id}${hit ? "  (cached)" : ""}`);
    }
    console.log(
      `${cells.length} cells${
        shard ? ` (shard ${shard.index}/${shard.count} of ${allCells.length})` : ""
      }; dry run, nothing written`,
    );
    return { resolved, rows: [], cachedCells: 0 };
  }

  await writeFileAtomic(
    `${opts.out}/experiment.resolved.json`,
    JSON.stringify(resolved, null, 2) + "\n",
  );
  const progress = opts.progress ?? createProgress(cells.length);
  let session: Session | null = null;
  const open =
    async () => (session ??= await openSession(modelDir, exp.backend, (m) => progress.log(m)));
  const rows: Row[] = [];
  let cachedCells = 0;
  try {
    for (const c of cells) {
      progress.start(c.id);
      const key = await cellKey(c);
      type CellArtifact = {
        metrics: Metric[];
        backend: string;
        device: string;
        started_at: string;
      };
      let art = opts.noCache ? null : await store.get<CellArtifact>("cell", key);
      const cached = art !== null;
      if (art) {
        cachedCells++;
      } else {
        const s = await open();
        const started = new Date().toISOString();
        const plan = isMoa(c.method)
          ? await planFor(s, c.method, c.density, (l) => progress.log(`  ${l}`))
          : undefined;
        const { metrics, backend } = await runCell(
          s,
          plan,
          exp,
          c,
          fileCases,
          store,
          opts.noCache ?? false,
          await casesKey(c.length),
          (d, t) => progress.update(d, t),
        );
        art = {
          metrics,
          backend,
          device: backend === s.backend ? s.device : `cpu ${navigator.hardwareConcurrency} cores`,
          started_at: started,
        };
        await store.put("cell", key, art);
      }
      for (const m of art.metrics) {
        rows.push({
          experiment: exp.name,
          run_id: runId,
          cell: c.id,
          model: exp.model,
          method: c.method,
          density: c.density,
          length: c.length,
          benchmark: c.benchmark,
          metric: m.metric,
          value: m.value,
          n: m.n,
          seed: exp.seed,
          backend: art.backend,
          device: art.device,
          git_sha: resolved.git_sha,
          started_at: art.started_at,
        });
      }
      await writeMetricsCsv(`${opts.out}/metrics.csv`, rows);
      const head = art.metrics[0];
      progress.finish(
        `${head ? `${head.metric}=${+head.value.toPrecision(4)}` : "no metrics"}${
          cached ? " (cached)" : ""
        }`,
      );
    }
  } finally {
    progress.stop();
  }
  if (cachedCells > 0) {
    notice(`${cachedCells} of ${cells.length} cells came from the cache (${store.root})`);
  }
  return { resolved, rows, cachedCells };
}

/**
 * Checks that `out` is free for run `runId`: empty, or holding the same run.
 * @throws InputError when it holds another run, or (with `resume`) no run
 */
export async function checkOutDir(out: string, runId: string, resume: boolean): Promise<void> {
  let previous: ResolvedRun | null = null;
  try {
    previous = JSON.parse(
      await Deno.readTextFile(`${out}/experiment.resolved.json`),
    ) as ResolvedRun;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new InputError(`${out}/experiment.resolved.json: unreadable (${e})`);
    }
  }
  if (resume && previous === null) {
    throw new InputError(`--resume: ${out} holds no earlier run to continue`);
  }
  if (previous && previous.run_id !== runId) {
    throw new InputError(
      `--out: ${out} holds run '${previous.run_id}' of a different experiment or model (this one is '${runId}'); ` +
        `choose another --out folder`,
    );
  }
}

async function runCell(
  s: Session,
  plan: Plan | undefined,
  exp: Experiment,
  c: Cell,
  fileCases: LongEvalCase[] | null,
  store: ArtifactStore,
  noCache: boolean,
  casesKey: string,
  tick: (done: number, total: number) => void,
): Promise<{ metrics: Metric[]; backend: string }> {
  const spec = {
    method: isMoa(c.method) ? "moa" : c.method as AttentionMethod,
    density: c.density,
    sink: exp.profile.sink,
    ...(plan ? { plan } : {}),
  };
  const newCache = cacheFactory(s.runner, spec);
  const method = sessionMethod(s, spec);
  switch (c.benchmark) {
    case "longeval": {
      const cases = fileCases
        ? bucketByLength(s, fileCases, exp.lengths, c.length)
        : await cachedCases(s, exp, c.length, store, noCache, casesKey);
      return { metrics: await runLongEval(s, cases, method, tick), backend: method.backend };
    }
    case "perplexity":
      return {
        metrics: await runPerplexity(
          s,
          await brownText("heldout"),
          c.length,
          exp.benchmarks.perplexity!.tokens,
          newCache,
          tick,
          pplChunk(c),
        ),
        backend: "cpu",
      };
    case "throughput": {
      const t = exp.benchmarks.throughput!;
      return {
        metrics: await runThroughput(s, c.length, t.decode, t.batch, exp.seed, method, tick),
        backend: method.backend,
      };
    }
  }
}

async function cachedCases(
  s: Session,
  exp: Experiment,
  length: number,
  store: ArtifactStore,
  noCache: boolean,
  key: string,
): Promise<LongEvalCase[]> {
  const le = exp.benchmarks.longeval!;
  const count = "cases" in le ? le.cases : 0;
  const countTokens = (t: string) => promptTokens(s, t).length;
  const make = () => {
    try {
      return Promise.resolve(
        generateCases({ count, targetLength: length, seed: exp.seed, countTokens }),
      );
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      const i = exp.lengths.indexOf(length);
      throw new InputError(
        `lengths[${i}]: ${length} tokens cannot hold a LongEval case for this model: ${e.message}`,
      );
    }
  };
  if (noCache) return make();
  return (await store.getOrCompute("cases", key, make)).value;
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
