/**
 * Test helper: run folders written from a few numbers, in the layout `deno task experiment`
 * writes (experiment.resolved.json, metrics.csv, cases.csv, plans/), for the report, compare
 * and history tests.
 *
 * @module
 */
import { type CaseRow, type Row, writeCasesCsv, writeMetricsCsv } from "../csv.ts";
import { writePlan } from "../../solver/plan.ts";

/** One cell of a synthetic run. */
export interface FakeCell {
  method: string;
  density: number;
  length: number;
  benchmark: string;
  /** metric → value (NaN: missing) and n. */
  metrics: Record<string, { value: number; n: number }>;
  /** Per-case scores, written to cases.csv (ids `c0`, `c1`, …; the hash names the case set). */
  cases?: { scores: number[]; set?: string };
}

/** What a synthetic run folder holds. */
export interface FakeRun {
  name: string;
  runId?: string;
  gitSha?: string;
  startedAt?: string;
  device?: string;
  lengths?: number[];
  cells: FakeCell[];
  /** Plans written to plans/<method>-d<density>.json. */
  plans?: {
    method: string;
    density: number;
    alphas: number[][];
    betas: number[][];
    pareto?: unknown[];
  }[];
}

/** The id a cell gets, as experiments/schema.ts names cells. */
export function cellId(c: Pick<FakeCell, "method" | "density" | "length" | "benchmark">): string {
  return `${c.method}-d${c.density}-n${c.length}-${c.benchmark}`;
}

/** Writes a synthetic run folder. @returns the folder */
export async function writeFakeRun(dir: string, run: FakeRun): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const runId = run.runId ?? `${run.name}-0000abcd`;
  const sha = run.gitSha ?? "abc123";
  const lengths = run.lengths ?? [...new Set(run.cells.map((c) => c.length))];
  const cells = run.cells.map((c, index) => ({
    id: cellId(c),
    method: c.method,
    density: c.density,
    length: c.length,
    benchmark: c.benchmark,
    index,
  }));
  await Deno.writeTextFile(
    `${dir}/experiment.resolved.json`,
    JSON.stringify({
      run_id: runId,
      experiment: { name: run.name, lengths, model: "fake" },
      model_dir: "fake",
      model_fingerprint: "0",
      cells,
      shard: null,
      git_sha: sha,
    }),
  );
  const rows: Row[] = [];
  const caseRows: CaseRow[] = [];
  for (const c of run.cells) {
    for (const [metric, { value, n }] of Object.entries(c.metrics)) {
      rows.push({
        experiment: run.name,
        run_id: runId,
        cell: cellId(c),
        model: "fake",
        method: c.method,
        density: c.density,
        length: c.length,
        benchmark: c.benchmark,
        metric,
        value: Number.isNaN(value) ? "" : value,
        n,
        seed: 0,
        backend: "cpu",
        device: run.device ?? "cpu 2 cores",
        git_sha: sha,
        started_at: run.startedAt ?? "2026-01-01T00:00:00.000Z",
      });
    }
    c.cases?.scores.forEach((score, i) =>
      caseRows.push({
        run_id: runId,
        cell: cellId(c),
        case: `c${i}`,
        hash: `${c.cases!.set ?? "s"}${i}`,
        score,
      })
    );
  }
  await writeMetricsCsv(`${dir}/metrics.csv`, rows);
  if (caseRows.length > 0) await writeCasesCsv(`${dir}/cases.csv`, caseRows);
  for (const p of run.plans ?? []) {
    await writePlan(`${dir}/plans/${p.method}-d${p.density}.json`, {
      model: "fake",
      sink: 32,
      block: 32,
      density: p.density,
      lengths: lengths,
      servingLength: Math.max(...lengths),
      alphas: p.alphas,
      betas: p.betas,
      provenance: p.pareto ? { pareto: p.pareto, validation_loss: 1 } : {},
    });
  }
  return dir;
}

/** `k` ones then `n − k` zeros: per-case outcomes with accuracy k/n. */
export function outcomes(k: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i < k ? 1 : 0));
}
