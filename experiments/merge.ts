/**
 * Merges the outputs of sharded runs (`--shard i/n` on n machines) into one folder whose
 * metrics.csv (and cases.csv) equals what the unsharded run writes.
 *
 * @module
 */
import { writeFileAtomic } from "../runtime/atomic.ts";
import { InputError } from "../runtime/errors.ts";
import {
  type CaseRow,
  readCasesCsv,
  readMetricsCsv,
  type Row,
  writeCasesCsv,
  writeMetricsCsv,
} from "./csv.ts";
import { checkOutDir, type ResolvedRun } from "./run.ts";

/** The result of a merge. */
export interface MergeResult {
  /** The merged metrics rows, in the unsharded run's cell order. */
  rows: Row[];
  /** Cell ids no shard produced (only with `partial`). */
  missing: string[];
}

/** Options of {@link mergeRuns}. */
export interface MergeOptions {
  /**
   * Merge even when some cells are in none of the folders (`--partial`); they are listed in
   * the result and in the merged experiment.resolved.json as `missing_cells`. @default false
   */
  partial?: boolean;
}

/**
 * Reads each folder's experiment.resolved.json and metrics.csv, checks they belong to one run,
 * and writes the union, in cell order, to `out`.
 *
 * @param dirs the shard output folders
 * @param out where the merged experiment.resolved.json and metrics.csv go
 * @param opts `partial` allows cells that no folder holds
 * @throws InputError when a folder is unreadable or belongs to another run, or (unless
 *   `partial`) when some cells are in none of the folders; nothing is written then
 */
export async function mergeRuns(
  dirs: string[],
  out: string,
  opts: MergeOptions = {},
): Promise<MergeResult> {
  if (dirs.length === 0) throw new InputError("merge: give at least one output folder");
  const runs: ResolvedRun[] = [];
  for (const d of dirs) {
    try {
      runs.push(
        JSON.parse(await Deno.readTextFile(`${d}/experiment.resolved.json`)) as ResolvedRun,
      );
    } catch {
      throw new InputError(`merge: ${d}/experiment.resolved.json is missing or unreadable`);
    }
  }
  const first = runs[0]!;
  runs.forEach((r, i) => {
    if (r.run_id !== first.run_id) {
      throw new InputError(
        `merge: ${dirs[i]} holds run '${r.run_id}', but ${dirs[0]} holds '${first.run_id}'`,
      );
    }
  });
  const norm = (d: string) => d.replace(/\/+$/, "");
  if (dirs.some((d) => norm(d) === norm(out))) {
    throw new InputError(`merge: --out ${out} is one of the folders being merged; choose another`);
  }
  await checkOutDir(out, first.run_id, false);
  const order = new Map(first.cells.map((c) => [c.id, c.index]));
  const byCell = new Map<string, Row[]>();
  const casesByCell = new Map<string, CaseRow[]>();
  for (const d of dirs) {
    const seen = new Set<string>();
    for (const row of await readMetricsCsv(`${d}/metrics.csv`)) {
      const id = String(row.cell);
      if (!order.has(id)) {
        throw new InputError(
          `merge: ${d}/metrics.csv has cell '${id}', unknown to run '${first.run_id}'`,
        );
      }
      if (byCell.has(id) && !seen.has(id)) continue; // the same cell from two shards: keep the first
      seen.add(id);
      byCell.set(id, [...(byCell.get(id) ?? []), row]);
    }
    // each case outcome comes from the folder whose metrics the merge keeps
    for (const row of await readCasesCsv(`${d}/cases.csv`)) {
      const id = String(row.cell);
      if (seen.has(id)) casesByCell.set(id, [...(casesByCell.get(id) ?? []), row]);
    }
  }
  const rows = [...byCell.entries()]
    .sort((a, b) => order.get(a[0])! - order.get(b[0])!)
    .flatMap(([, r]) => r);
  const missing = first.cells.filter((c) => !byCell.has(c.id)).map((c) => c.id);
  if (missing.length > 0 && !opts.partial) {
    const count = first.shard?.count;
    const have = new Set(runs.map((r) => r.shard?.index));
    const absent = count && runs.every((r) => r.shard?.count === count)
      ? Array.from({ length: count }, (_, i) => i).filter((i) => !have.has(i))
      : [];
    throw new InputError(
      `merge: ${missing.length} of ${first.cells.length} cells are in none of the folders ` +
        `(${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", …" : ""})` +
        (absent.length
          ? `; no folder holds shard ${absent.map((i) => `${i}/${count}`).join(", ")}`
          : "") +
        `; give every shard's folder, or --partial to merge what is there`,
    );
  }
  await writeFileAtomic(
    `${out}/experiment.resolved.json`,
    JSON.stringify(
      {
        ...first,
        shard: null,
        merged_from: dirs,
        ...(missing.length ? { missing_cells: missing } : {}),
      },
      null,
      2,
    ) + "\n",
  );
  await writeMetricsCsv(`${out}/metrics.csv`, rows);
  await writeCasesCsv(
    `${out}/cases.csv`,
    [...casesByCell.entries()]
      .sort((a, b) => order.get(a[0])! - order.get(b[0])!)
      .flatMap(([, r]) => r),
  );
  return { rows, missing };
}
