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
import { InputError } from "../runtime/errors.ts";
import { ArtifactStore, type Claim, describeHolder } from "./cache.ts";
import { hashOf, modelFingerprint } from "../runtime/hash.ts";
import { type Metric, runLongEval, runPerplexity, runThroughput } from "../data/benchmarks.ts";
import { sessionDecoder } from "../runtime/decoder.ts";
import { cacheFactory } from "../runtime/cpu/method_cache.ts";
import {
  isMoa,
  type Method,
  type MoaMethod,
  planRecipe,
  scoringChunk,
} from "../runtime/methods.ts";
import {
  loadInfluence,
  makePlan,
  type ProfileCache,
  type StoredInfluence,
  storeInfluence,
} from "../solver/pipeline.ts";
import { MAX_PROFILE_LENGTH } from "../solver/profile.ts";
import { type Plan, validatePlan, writePlan } from "../solver/plan.ts";
import type { ModelConfig } from "../runtime/model.ts";
import { checkLength, checkMemory } from "./limits.ts";
import { type Row, writeMetricsCsv } from "./csv.ts";
import { createProgress, type Progress } from "./progress.ts";
import { type Cell, expandCells, type Experiment } from "./schema.ts";
import {
  checkModel,
  openSession,
  promptTokens,
  resolveModelDir,
  type Session,
} from "../runtime/session.ts";

/** Tokens per perplexity step of a cell's method (`scoringChunk`). */
function pplChunk(c: Cell): number {
  return scoringChunk(c.method);
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
  /** How often a run waiting for another run's cell looks again, ms. @default 1000 */
  pollMs?: number;
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

/** What {@link preflight} found. */
export interface Preflight {
  modelDir: string;
  /** The cases of a LongEval `file`, or null. */
  fileCases: LongEvalCase[] | null;
  config: ModelConfig;
  /** Lines to print before running (`warning: …`): lengths past the model's context, cells
   * whose file cases were all dropped. */
  warnings: string[];
}

/**
 * Checks everything that can be checked before any output is written: methods and backend
 * available, the model folder whole (config, weight headers, tokenizer), the LongEval file
 * readable, and every length servable by the model and the data.
 * @throws InputError naming the field and what is wrong
 */
export async function preflight(exp: Experiment, source?: string): Promise<Preflight> {
  try {
    return await checkInputs(exp);
  } catch (e) {
    if (e instanceof InputError && source) throw new InputError(`${source}: ${e.message}`);
    throw e;
  }
}

async function checkInputs(exp: Experiment): Promise<Preflight> {
  const modelDir = await resolveModelDir(exp.model);
  const { config, tokenizer } = await checkModel(modelDir);
  const countTokens = (t: string) =>
    tokenizer.encode(t).length + (config.bosTokenId === null ? 0 : 1);
  const warnings: string[] = [];
  if (exp.methods.some(isMoa)) {
    exp.profile.lengths.forEach((n, i) => {
      if (n > MAX_PROFILE_LENGTH) {
        throw new InputError(
          `profile.lengths[${i}]: ${n} tokens exceed the ${MAX_PROFILE_LENGTH} the CPU profiler can hold ` +
            `(jax-js keeps every layer's T×T attention in 4 GiB of WebAssembly memory); profile shorter lengths`,
        );
      }
      // calibration prompts leave room for a response of up to 48 tokens
      try {
        generateCases({ count: 1, targetLength: n - 48, seed: exp.seed, countTokens });
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        throw new InputError(
          `profile.lengths[${i}]: ${n} tokens cannot hold a calibration prompt and its answer for this model: ${e.message}`,
        );
      }
      const w = checkLength(config, n, `profile.lengths[${i}]: ${n} tokens`);
      if (w) warnings.push(w);
    });
  }
  const t = exp.benchmarks.throughput;
  exp.lengths.forEach((n, i) => {
    const w = checkLength(config, n, `lengths[${i}]: ${n} tokens`);
    if (w) warnings.push(w);
    checkMemory(config, n, `lengths[${i}]: ${n} tokens`);
    if (t) {
      checkMemory(
        config,
        t.batch * (n + t.decode),
        `lengths[${i}]: throughput at ${n} tokens (+ ${t.decode} decoded) × batch ${t.batch}`,
      );
    }
  });
  const le = exp.benchmarks.longeval;
  let fileCases: LongEvalCase[] | null = null;
  if (le && "file" in le) {
    fileCases = await readLongEvalJsonl(le.file);
    if (le.limit !== null) fileCases = fileCases.slice(0, le.limit);
    warnings.push(
      ...droppedCases(fileCases.map((c) => countTokens(c.prompt)), exp.lengths, le.file),
    );
  } else if (le) {
    // every length must hold at least a two-line LongEval prompt in this model's tokens
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
  if (exp.benchmarks.perplexity) {
    // a perplexity window is `length` tokens scored after one more: the text must hold it
    const have = tokenizer.encode(await brownText("heldout")).length;
    exp.lengths.forEach((n, i) => {
      if (n + 1 > have) {
        throw new InputError(
          `lengths[${i}]: perplexity at ${n} tokens needs a window of ${
            n + 1
          } tokens of held-out ` +
            `text, but the held-out Brown text is ${have} tokens long for this model; use lengths ` +
            `up to ${have - 1} or leave out benchmarks.perplexity`,
        );
      }
    });
  }
  return { modelDir, fileCases, config, warnings };
}

/**
 * Warnings for a LongEval file's cases that no length gets: each case goes to the smallest
 * length its prompt fits in (see `bucketByLength`), so a length can end up with none (its
 * accuracy is then missing) and cases longer than every length are dropped.
 * @param tokens each case's prompt length in the model's tokens
 */
function droppedCases(tokens: number[], lengths: number[], file: string): string[] {
  const out: string[] = [];
  const sorted = [...lengths].sort((a, b) => a - b);
  sorted.forEach((level, k) => {
    const below = k === 0 ? 0 : sorted[k - 1]!;
    if (!tokens.some((n) => n > below && n <= level)) {
      out.push(
        `warning: lengths[${lengths.indexOf(level)}]: no case of ${file} has a prompt of ` +
          `${below + 1}–${level} tokens, so LongEval accuracy at ${level} is missing ` +
          `(an empty value in metrics.csv, n/a in the table)`,
      );
    }
  });
  const longest = sorted.at(-1)!;
  const over = tokens.filter((n) => n > longest).length;
  if (over > 0) {
    out.push(
      `warning: ${over} of ${tokens.length} cases of ${file} are longer than the longest ` +
        `length ${longest} and are left out`,
    );
  }
  return out;
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
  const { modelDir, fileCases, config, warnings } = await preflight(exp, opts.source);
  for (const w of warnings) notice(w);
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
  const cacheDir = opts.cacheDir ?? `${opts.out}/../.cache`;
  await checkCacheDir(cacheDir);
  // notices go to the progress display once it exists, so they do not tear its bar
  let log = notice;
  const store = new ArtifactStore(cacheDir, {
    notice: (l) => log(l),
    ...(opts.pollMs === undefined ? {} : { pollMs: opts.pollMs }),
  });

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
      // absent under the default per-query spans, so cells cached before the option still hit
      spans: exp.spans === "reference" && c.method === "streaming" ? exp.spans : undefined,
    });
  // the moa plan of a density: depends on the model, the profile settings and the serving length
  const planKey = (method: Method, density: number) =>
    hashOf({
      method,
      stage: "plan",
      // 5: Pareto plans compared at every profiled length, and MoA's candidates include the
      // `head` search's static windows (2–4 were intermediate versions of this session);
      // 6: the profiler charges the band the plan's span semantics applies (was the static band)
      v: 6,
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
  // each length's profile is shared by every density, search space and method that asks for it
  const profileCache: ProfileCache = async (key, compute) => {
    if (opts.noCache) return await compute();
    const k = await hashOf({ stage: "profile", v: 1, fingerprint, ...key });
    const { value } = await store.getOrCompute<StoredInfluence>(
      "profile",
      k,
      async () => storeInfluence(await compute()),
      (v) => validProfile(v, config),
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
            profileCache,
          )).plan;
        const plan = opts.noCache
          ? await make()
          : (await store.getOrCompute("plan", key, make, (v) => validPlan(v, config))).value;
        await writePlan(`${opts.out}/plans/${method}-d${density}.json`, plan);
        return plan;
      })();
      plans.set(`${method}@${density}`, p);
    }
    return p;
  };

  if (opts.dryRun) {
    for (const c of cells) {
      const hit = !opts.noCache &&
        (await store.get("cell", await cellKey(c), (v) => validCell(v, c))) !== null;
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
  log = (l) => progress.log(l);
  let session: Session | null = null;
  const open =
    async () => (session ??= await openSession(modelDir, exp.backend, (m) => progress.log(m)));
  const rowsOf = new Map<number, Row[]>();
  const inOrder = () => cells.flatMap((c) => rowsOf.get(c.index) ?? []);
  let cachedCells = 0;
  /**
   * Runs one cell, or takes it from the cache. @returns false, doing nothing, when another run
   * sharing the cache holds the cell's claim (it is computing it)
   */
  const runOne = async (c: (typeof cells)[number]): Promise<boolean> => {
    const key = await cellKey(c);
    const valid = (v: unknown) => validCell(v, c);
    let art = opts.noCache ? null : await store.get<CellArtifact>("cell", key, valid);
    let claim: Claim | null = null;
    if (art === null && !opts.noCache) {
      const got = await store.claim("cell", key);
      if ("pid" in got) {
        if (!waiting.has(c.id)) progress.log(`${c.id}: ${describeHolder(got)}; doing other cells`);
        waiting.add(c.id);
        return false;
      }
      claim = got;
    }
    try {
      progress.start(c.id);
      // another run may have stored it between our look and our claim
      if (art === null && claim) art = await store.get<CellArtifact>("cell", key, valid);
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
      rowsOf.set(
        c.index,
        art.metrics.map((m) => ({
          experiment: exp.name,
          run_id: runId,
          cell: c.id,
          model: exp.model,
          method: c.method,
          density: c.density,
          length: c.length,
          benchmark: c.benchmark,
          metric: m.metric,
          // a missing value (nothing to measure) is an empty field, never 0
          value: Number.isNaN(m.value) ? "" : m.value,
          n: m.n,
          seed: exp.seed,
          backend: art!.backend,
          device: art!.device,
          git_sha: resolved.git_sha,
          started_at: art!.started_at,
        })),
      );
      await writeMetricsCsv(`${opts.out}/metrics.csv`, inOrder());
      const head = art.metrics[0];
      const shown = head && (Number.isNaN(head.value) ? "n/a" : +head.value.toPrecision(4));
      progress.finish(
        `${head ? `${head.metric}=${shown}` : "no metrics"}${cached ? " (cached)" : ""}`,
      );
      return true;
    } finally {
      await claim?.release();
    }
  };
  const waiting = new Set<string>();
  try {
    // cells another run is computing are passed over, then waited for once nothing else is left
    let pending = cells;
    while (pending.length > 0) {
      const left: typeof cells = [];
      for (const c of pending) if (!(await runOne(c))) left.push(c);
      if (left.length === pending.length) await store.wait();
      pending = left;
    }
  } finally {
    progress.stop();
  }
  const rows = inOrder();
  if (cachedCells > 0) {
    notice(`${cachedCells} of ${cells.length} cells came from the cache (${store.root})`);
  }
  return { resolved, rows, cachedCells };
}

/** What the cache stores per cell. */
interface CellArtifact {
  /** A value of NaN is missing (stored as null): the cell had nothing to measure. */
  metrics: Metric[];
  backend: string;
  device: string;
  started_at: string;
}

/** The metrics every artifact of a benchmark's cell has. */
const REQUIRED_METRICS: Record<Cell["benchmark"], string[]> = {
  longeval: ["accuracy", "prompt_tokens"],
  perplexity: ["perplexity", "nll"],
  throughput: ["prefill_tokens_per_s", "decode_tokens_per_s", "kv_bytes"],
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function shown(v: unknown): string {
  const t = v === undefined ? "nothing" : JSON.stringify(v);
  return t.length > 60 ? `${t.slice(0, 60)}…` : t;
}

/**
 * A stored cell artifact, checked: the metrics of the cell's benchmark with finite values (null
 * for missing) and counts, and the strings every row takes.
 * @throws Error naming the field that is wrong
 */
function validCell(v: unknown, c: Cell): CellArtifact {
  if (!isRecord(v)) throw new Error(`expected an object, got ${shown(v)}`);
  if (!Array.isArray(v.metrics)) {
    throw new Error(`metrics: expected a list, got ${shown(v.metrics)}`);
  }
  const metrics = v.metrics.map((m: unknown, i): Metric => {
    if (!isRecord(m)) throw new Error(`metrics[${i}]: expected an object, got ${shown(m)}`);
    if (typeof m.metric !== "string" || m.metric === "") {
      throw new Error(`metrics[${i}].metric: expected a name, got ${shown(m.metric)}`);
    }
    if (m.value !== null && (typeof m.value !== "number" || !Number.isFinite(m.value))) {
      throw new Error(
        `metrics[${i}].value: expected a number (or null for missing), got ${shown(m.value)}`,
      );
    }
    if (typeof m.n !== "number" || !Number.isSafeInteger(m.n) || m.n < 0) {
      throw new Error(`metrics[${i}].n: expected a count, got ${shown(m.n)}`);
    }
    return { metric: m.metric, value: m.value ?? NaN, n: m.n };
  });
  for (const name of REQUIRED_METRICS[c.benchmark]) {
    if (!metrics.some((m) => m.metric === name)) {
      throw new Error(`metrics: no '${name}', which every ${c.benchmark} cell has`);
    }
  }
  for (const k of ["backend", "device", "started_at"] as const) {
    if (typeof v[k] !== "string") throw new Error(`${k}: expected a string, got ${shown(v[k])}`);
  }
  return {
    metrics,
    backend: v.backend as string,
    device: v.device as string,
    started_at: v.started_at as string,
  };
}

/**
 * Stored LongEval cases, checked for what the benchmark reads.
 * @throws Error naming the case and field that is wrong
 */
function validCases(v: unknown): LongEvalCase[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new Error(`expected a non-empty list of cases, got ${shown(v)}`);
  }
  v.forEach((c: unknown, i) => {
    if (!isRecord(c)) throw new Error(`[${i}]: expected a case object, got ${shown(c)}`);
    if (typeof c.id !== "string") {
      throw new Error(`[${i}].id: expected a string, got ${shown(c.id)}`);
    }
    if (typeof c.prompt !== "string" || c.prompt === "") {
      throw new Error(`[${i}].prompt: expected a prompt, got ${shown(c.prompt)}`);
    }
    if (typeof c.expected !== "number" || !Number.isSafeInteger(c.expected)) {
      throw new Error(`[${i}].expected: expected an integer, got ${shown(c.expected)}`);
    }
    const d = c.decile;
    if (d !== null && !(typeof d === "number" && Number.isInteger(d) && d >= 0 && d <= 9)) {
      throw new Error(`[${i}].decile: expected null or 0–9, got ${shown(d)}`);
    }
  });
  return v as LongEvalCase[];
}

/**
 * A stored profile, checked against the model's shape.
 * @throws Error naming the field that is wrong
 */
function validProfile(v: unknown, config: ModelConfig): StoredInfluence {
  if (!isRecord(v)) throw new Error(`expected an object, got ${shown(v)}`);
  for (const k of ["length", "block", "numBlocks", "samples"] as const) {
    if (typeof v[k] !== "number" || !Number.isSafeInteger(v[k]) || (v[k] as number) < 1) {
      throw new Error(`${k}: expected a positive integer, got ${shown(v[k])}`);
    }
  }
  const nb = v.numBlocks as number;
  if (nb !== Math.ceil((v.length as number) / (v.block as number))) {
    throw new Error(`numBlocks: expected ⌈length / block⌉, got ${nb}`);
  }
  const values = v.values;
  const ok = Array.isArray(values) && values.length === config.numLayers &&
    values.every((l) =>
      Array.isArray(l) && l.length === config.numKvHeads &&
      l.every((h) =>
        Array.isArray(h) && h.length === nb * nb &&
        h.every((x) => typeof x === "number" && Number.isFinite(x))
      )
    );
  if (!ok) {
    throw new Error(
      `values: expected ${config.numLayers} layers × ${config.numKvHeads} kv heads × ${nb}² finite numbers`,
    );
  }
  return v as unknown as StoredInfluence;
}

/**
 * A stored plan, checked as a plan file is and against the model's shape.
 * @throws Error naming the field that is wrong
 */
function validPlan(v: unknown, config: ModelConfig): Plan {
  const plan = validatePlan(v, "plan");
  if (
    plan.alphas.length !== config.numLayers ||
    plan.alphas.some((l) => l.length !== config.numKvHeads)
  ) {
    throw new Error(
      `plan: expected ${config.numLayers} layers × ${config.numKvHeads} kv heads of rules`,
    );
  }
  return plan;
}

/** @throws InputError when the cache folder's path is taken by something else than a folder */
async function checkCacheDir(dir: string): Promise<void> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) {
      throw new InputError(
        `--cache: ${dir} is a file; the stage cache needs a folder (set by --cache or $MOA_CACHE)`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
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
    method: c.method,
    density: c.density,
    sink: exp.profile.sink,
    ...(plan ? { plan } : {}),
    spans: exp.spans,
    block: exp.profile.block,
  };
  const newCache = cacheFactory(s.cpu, spec);
  const method = sessionDecoder(s, spec);
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
  return (await store.getOrCompute("cases", key, make, validCases)).value;
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
