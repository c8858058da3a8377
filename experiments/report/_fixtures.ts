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

/**
 * A run with every kind of chart's data: LongEval accuracy (with deciles and cases), perplexity
 * and throughput for dense and moa@0.5 at two lengths, and moa's plan with its Pareto set
 * (2 layers × 2 kv heads, 3 Pareto plans).
 */
export function fullRun(name: string, shift = 0): FakeRun {
  const lengths = [512, 1024];
  const cells: FakeCell[] = [];
  for (const [method, density] of [["dense", 1], ["moa", 0.5]] as const) {
    for (const length of lengths) {
      const k = 16 - (method === "moa" ? 2 : 0) - (length === 1024 ? 4 : 0) - shift;
      const deciles = Object.fromEntries(
        Array.from({ length: 10 }, (_, d) => [`accuracy_decile_${d}`, { value: d / 10, n: 2 }]),
      );
      cells.push(
        {
          method,
          density,
          length,
          benchmark: "longeval",
          metrics: {
            accuracy: { value: k / 20, n: 20 },
            ...deciles,
            prompt_tokens: { value: length - 10, n: 20 },
          },
          cases: { scores: outcomes(k, 20) },
        },
        {
          method,
          density,
          length,
          benchmark: "perplexity",
          metrics: {
            perplexity: { value: 20 + length / 512 + density, n: 2048 },
            nll: { value: 3, n: 2048 },
          },
        },
        {
          method,
          density,
          length,
          benchmark: "throughput",
          metrics: {
            prefill_tokens_per_s: { value: 1000 - length / 4, n: length },
            decode_tokens_per_s: { value: 100 / density - length / 64, n: 16 },
            kv_bytes: { value: 1024 * length * density, n: 1 },
          },
        },
      );
    }
  }
  return {
    name,
    lengths,
    cells,
    plans: [{
      method: "moa",
      density: 0.5,
      alphas: [[64, 256], [0, 128]],
      betas: [[0.25, 0], [0.5, 0.125]],
      pareto: [0.9, 0.95, 1.1].map((loss, i) => ({
        objectives: [loss, loss],
        validation_loss: loss,
        densities: { "density@512": 0.5 - i / 100, "density@1024": 0.48 - i / 100 },
      })),
    }],
  };
}
