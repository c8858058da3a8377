/**
 * A finished run's folder as reports and comparisons read it: `experiment.resolved.json`,
 * `metrics.csv`, `cases.csv` (per-case outcomes, when recorded) and the plans under `plans/`.
 *
 * @module
 */
import { InputError } from "../../runtime/errors.ts";
import { type Plan, readPlan } from "../../solver/plan.ts";
import { type CaseRow, readCasesCsv, readMetricsCsv, type Row } from "../csv.ts";
import type { ResolvedRun } from "../run.ts";

/** A plan a run made, named by its file under `plans/` (`<method>-d<density>.json`). */
export interface RunPlan {
  /** The method, from the file name. */
  method: string;
  /** The density budget, from the file name. */
  density: number;
  /** The plan. */
  plan: Plan;
}

/** What a report or a comparison reads of one run folder. */
export interface RunFolder {
  /** The folder. */
  dir: string;
  /** A short name for the run in charts and tables: the experiment's name, made unique. */
  label: string;
  /** `experiment.resolved.json`. */
  resolved: ResolvedRun;
  /** `metrics.csv`, values as numbers (NaN where missing). */
  rows: MetricRow[];
  /** `cases.csv` (empty when the run recorded none). */
  cases: CaseRow[];
  /** The plans under `plans/`. */
  plans: RunPlan[];
}

/** A metrics.csv row with its numbers parsed; a missing value is NaN. */
export interface MetricRow {
  cell: string;
  method: string;
  density: number;
  length: number;
  benchmark: string;
  metric: string;
  value: number;
  n: number;
  backend: string;
  device: string;
  git_sha: string;
  started_at: string;
}

/** Parses a metrics.csv row's numbers. */
function parsed(r: Row): MetricRow {
  const num = (v: string | number) => (v === "" ? NaN : Number(v));
  return {
    cell: String(r.cell),
    method: String(r.method),
    density: num(r.density),
    length: num(r.length),
    benchmark: String(r.benchmark),
    metric: String(r.metric),
    value: num(r.value),
    n: num(r.n),
    backend: String(r.backend),
    device: String(r.device),
    git_sha: String(r.git_sha),
    started_at: String(r.started_at),
  };
}

/**
 * Reads a run folder.
 * @throws InputError when the folder, its experiment.resolved.json or its metrics.csv is missing
 *   or unreadable, or a plan under `plans/` is malformed
 */
export async function readRun(dir: string): Promise<RunFolder> {
  let resolved: ResolvedRun;
  try {
    resolved = JSON.parse(await Deno.readTextFile(`${dir}/experiment.resolved.json`));
  } catch (e) {
    throw new InputError(
      `${dir}: not a run folder (experiment.resolved.json: ${
        e instanceof Deno.errors.NotFound ? "missing" : (e as Error).message
      })`,
    );
  }
  if (typeof resolved?.run_id !== "string" || typeof resolved.experiment?.name !== "string") {
    throw new InputError(`${dir}/experiment.resolved.json: expected run_id and experiment.name`);
  }
  const rows = (await readMetricsCsv(`${dir}/metrics.csv`)).map(parsed);
  const cases = await readCasesCsv(`${dir}/cases.csv`);
  const plans: RunPlan[] = [];
  try {
    for await (const e of Deno.readDir(`${dir}/plans`)) {
      const m = /^(.+)-d([\d.]+)\.json$/.exec(e.name);
      if (!e.isFile || !m) continue;
      plans.push({
        method: m[1]!,
        density: Number(m[2]),
        plan: await readPlan(`${dir}/plans/${e.name}`),
      });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  plans.sort((a, b) => a.method.localeCompare(b.method) || a.density - b.density);
  return { dir, label: resolved.experiment.name, resolved, rows, cases, plans };
}

/**
 * Reads several run folders and gives each a unique label: the experiment's name, followed by
 * the run id's hash (and then the folder) where two runs share a name.
 */
export async function readRuns(dirs: string[]): Promise<RunFolder[]> {
  const runs: RunFolder[] = [];
  for (const d of dirs) runs.push(await readRun(d.replace(/\/+$/, "")));
  const count = (f: (r: RunFolder) => string) => {
    const c = new Map<string, number>();
    for (const r of runs) c.set(f(r), (c.get(f(r)) ?? 0) + 1);
    return c;
  };
  const byName = count((r) => r.label);
  for (const r of runs) {
    if (byName.get(r.label)! > 1) r.label = `${r.label} (${r.resolved.run_id.split("-").at(-1)})`;
  }
  const byLabel = count((r) => r.label);
  for (const r of runs) if (byLabel.get(r.label)! > 1) r.label = `${r.label} ${r.dir}`;
  return runs;
}

/** How a method at a density is named in charts: `moa@0.5`, or the method alone when dense. */
export function seriesName(method: string, density: number): string {
  return method === "dense" || !Number.isFinite(density) ? method : `${method}@${density}`;
}
