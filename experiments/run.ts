/**
 * Runs an experiment: expands it into cells (method × density × length × benchmark), runs each
 * cell's stages (experiments/stages.ts) with their artifacts cached by a hash of their inputs,
 * and writes `experiment.resolved.json`, `metrics.csv` and `cases.csv` (each case's outcome).
 *
 * {@link runExperiment} in stages: {@link resolveRun} checks the inputs (experiments/preflight.ts)
 * and the output and cache folders and names the run; a dry run lists the cells
 * ({@link listCells}); otherwise {@link runCells} measures each cell or takes it from the cache,
 * sharing the cache with other runs through claims, and rewrites `metrics.csv` after every cell
 * ({@link cellRows}).
 *
 * @module
 */
import { writeFileAtomic } from "../runtime/atomic.ts";
import { InputError } from "../runtime/errors.ts";
import { hashOf, modelFingerprint } from "../runtime/hash.ts";
import { openSession, resolveModelDir, type Session } from "../runtime/session.ts";
import type { CellArtifact } from "./artifacts.ts";
import { ArtifactStore, type Claim, describeHolder } from "./cache.ts";
import { type CaseRow, type Row, writeCasesCsv, writeMetricsCsv } from "./csv.ts";
import { type Preflight, preflight } from "./preflight.ts";
import { createProgress, type Progress } from "./progress.ts";
import { type Cell, expandCells, type Experiment } from "./schema.ts";
import { CellStages } from "./stages.ts";

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

/** A cell with its index in the grid's expansion order. */
type IndexedCell = Cell & { index: number };

/** What {@link resolveRun} settles before a run writes anything. */
export interface RunPlan {
  /** What `experiment.resolved.json` holds. */
  resolved: ResolvedRun;
  /** The cells this process runs (its shard's). */
  cells: IndexedCell[];
  /** What the checks found. */
  checked: Preflight;
  /** The artifact cache folder. */
  cacheDir: string;
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
  const run = await resolveRun(exp, opts, notice);
  // notices go to the progress display once it exists, so they do not tear its bar
  let log = notice;
  const store = new ArtifactStore(run.cacheDir, {
    notice: (l) => log(l),
    ...(opts.pollMs === undefined ? {} : { pollMs: opts.pollMs }),
  });
  const stages = new CellStages({
    exp,
    fingerprint: run.resolved.model_fingerprint,
    config: run.checked.config,
    fileCases: run.checked.fileCases,
    store,
    noCache: opts.noCache ?? false,
    out: opts.out,
  });
  if (opts.dryRun) {
    await listCells(run, stages, opts.shard ?? null);
    return { resolved: run.resolved, rows: [], cachedCells: 0 };
  }
  await writeFileAtomic(
    `${opts.out}/experiment.resolved.json`,
    JSON.stringify(run.resolved, null, 2) + "\n",
  );
  const progress = opts.progress ?? createProgress(run.cells.length);
  log = (l) => progress.log(l);
  const { rows, cachedCells } = await runCells(run, stages, store, progress, opts.out);
  if (cachedCells > 0) {
    notice(`${cachedCells} of ${run.cells.length} cells came from the cache (${store.root})`);
  }
  return { resolved: run.resolved, rows, cachedCells };
}

/**
 * The first stage of a run: checks the inputs, names the run, expands the grid and picks the
 * shard's cells, and checks that the output and cache folders can take it. Writes nothing.
 * @throws InputError naming what is wrong
 */
export async function resolveRun(
  exp: Experiment,
  opts: RunOptions,
  notice: (line: string) => void,
): Promise<RunPlan> {
  const checked = await preflight(exp, opts.source);
  for (const w of checked.warnings) notice(w);
  const fingerprint = await modelFingerprint(checked.modelDir);
  const runId = await runIdOf(exp, fingerprint);
  const allCells = expandCells(exp).map((c, index) => ({ ...c, index }));
  const shard = opts.shard ?? null;
  const cells = shard ? allCells.filter((c) => c.index % shard.count === shard.index) : allCells;
  const resolved: ResolvedRun = {
    run_id: runId,
    experiment: exp,
    model_dir: checked.modelDir,
    model_fingerprint: fingerprint,
    cells: allCells,
    shard,
    git_sha: opts.gitSha ?? await gitSha(),
  };
  await checkOutDir(opts.out, runId, opts.resume ?? false);
  const cacheDir = opts.cacheDir ?? `${opts.out}/../.cache`;
  await checkCacheDir(cacheDir);
  return { resolved, cells, checked, cacheDir };
}

/** A dry run: prints the shard's cells and whether each is cached. */
export async function listCells(
  run: RunPlan,
  stages: CellStages,
  shard: Shard | null,
): Promise<void> {
  for (const c of run.cells) {
    const hit = (await stages.cached(c)) !== null;
    console.log(`${String(c.index).padStart(4)}  ${c.id}${hit ? "  (cached)" : ""}`);
  }
  console.log(
    `${run.cells.length} cells${
      shard ? ` (shard ${shard.index}/${shard.count} of ${run.resolved.cells.length})` : ""
    }; dry run, nothing written`,
  );
}

/**
 * Measures every cell of the run or takes it from the cache, rewriting `metrics.csv` after each.
 * A cell another run sharing the cache has claimed is passed over, then waited for once nothing
 * else is left.
 * @returns the rows in cell order, and how many cells came from the cache
 */
export async function runCells(
  run: RunPlan,
  stages: CellStages,
  store: ArtifactStore,
  progress: Progress,
  out: string,
): Promise<{ rows: Row[]; cachedCells: number }> {
  const { resolved, cells } = run;
  let session: Session | null = null;
  const open = async () => (session ??= await openSession(
    resolved.model_dir,
    resolved.experiment.backend,
    (m) => progress.log(m),
  ));
  const rowsOf = new Map<number, Row[]>();
  const casesOf = new Map<number, CaseRow[]>();
  const inOrder = () => cells.flatMap((c) => rowsOf.get(c.index) ?? []);
  const waiting = new Set<string>();
  let cachedCells = 0;
  /** Runs one cell, or takes it from the cache. @returns false when another run holds it */
  const runOne = async (c: IndexedCell): Promise<boolean> => {
    let art = await stages.cached(c);
    let claim: Claim | null = null;
    if (art === null && !stages.ctx.noCache) {
      const got = await store.claim("cell", await stages.cellKey(c));
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
      if (art === null && claim) art = await stages.cached(c);
      const cached = art !== null;
      if (art) cachedCells++;
      else {
        art = await stages.measure(
          await open(),
          c,
          (d, t) => progress.update(d, t),
          (l) => progress.log(`  ${l}`),
        );
      }
      rowsOf.set(c.index, cellRows(resolved, c, art));
      casesOf.set(c.index, caseRows(resolved, c, art));
      await writeMetricsCsv(`${out}/metrics.csv`, inOrder());
      await writeCasesCsv(`${out}/cases.csv`, cells.flatMap((x) => casesOf.get(x.index) ?? []));
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
  try {
    let pending = cells;
    while (pending.length > 0) {
      const left: IndexedCell[] = [];
      for (const c of pending) if (!(await runOne(c))) left.push(c);
      if (left.length === pending.length) await store.wait();
      pending = left;
    }
  } finally {
    progress.stop();
  }
  return { rows: inOrder(), cachedCells };
}

/** The metrics.csv rows of a cell's artifact. */
export function cellRows(resolved: ResolvedRun, c: Cell, art: CellArtifact): Row[] {
  const exp = resolved.experiment;
  return art.metrics.map((m) => ({
    experiment: exp.name,
    run_id: resolved.run_id,
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
    backend: art.backend,
    device: art.device,
    git_sha: resolved.git_sha,
    started_at: art.started_at,
  }));
}

/** The cases.csv rows of a cell's artifact (none when the cell recorded no per-case outcomes). */
export function caseRows(resolved: ResolvedRun, c: Cell, art: CellArtifact): CaseRow[] {
  return (art.cases ?? []).map((k) => ({
    run_id: resolved.run_id,
    cell: c.id,
    case: k.id,
    hash: k.hash,
    score: k.score,
  }));
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
