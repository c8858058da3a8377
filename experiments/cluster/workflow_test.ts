/**
 * .github/workflows/bench.yml read as GitHub reads it: triggered by a schedule and by hand; a
 * matrix of every shard 0 … n − 1 of one experiment; a merge of exactly those shards; a compare
 * against the baseline whose regression fails the run; the report uploaded; and every
 * `deno task` and file it names exists.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parse } from "yaml";

const ROOT = new URL("../../", import.meta.url).pathname;
const text = await Deno.readTextFile(`${ROOT}.github/workflows/bench.yml`);
/** What the test reads of a workflow step. */
interface Step {
  run?: string;
  uses?: string;
  id?: string;
  if?: string;
  with?: Record<string, string>;
}
/** What the test reads of the workflow (GitHub's schema, in part). */
interface Workflow {
  on: {
    schedule: { cron: string }[];
    workflow_dispatch: { inputs: { experiment: { default: string } } };
  };
  env: Record<string, string>;
  jobs: Record<string, {
    needs?: string;
    strategy: { "fail-fast": boolean; matrix: { shard: number[] } };
    steps: Step[];
  }>;
}
const wf = parse(text) as Workflow;
const tasks = Object.keys(JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks);

/** Every `run:` script of a job, in order. */
const runs = (job: string): string[] => wf.jobs[job]!.steps.flatMap((s) => (s.run ? [s.run] : []));
/** A job's steps that use an action. */
const uses = (job: string, action: string) =>
  wf.jobs[job]!.steps.filter((s) => s.uses?.startsWith(action));

Deno.test("bench.yml runs on a schedule and by hand", () => {
  const cron = wf.on.schedule[0]!.cron;
  const fields = cron.split(/\s+/);
  assert.equal(fields.length, 5, `cron '${cron}': five fields`);
  assert.ok(fields.slice(0, 2).every((f) => /^\d+$/.test(f)), "a fixed minute and hour");
  assert.ok("workflow_dispatch" in wf.on);
});

Deno.test("bench.yml shards the experiment 0 … n − 1 and merges exactly those shards", () => {
  const shards: number[] = wf.jobs.shard!.strategy.matrix.shard;
  const n = Number(wf.env.SHARDS);
  assert.deepEqual(shards, Array.from({ length: n }, (_, i) => i), "the matrix lists every shard");
  assert.equal(wf.jobs.shard!.strategy["fail-fast"], false);
  const run = runs("shard").join("\n");
  assert.match(
    run,
    /deno task experiment "\$EXPERIMENT" --shard \$\{\{ matrix\.shard \}\}\/\$SHARDS/,
  );
  assert.match(run, /--out results\/shard\$\{\{ matrix\.shard \}\}/);
  assert.equal(
    uses("shard", "actions/upload-artifact")[0]!.with!.name,
    "shard-${{ matrix.shard }}",
  );
  // the merge job downloads each shard-<i> artifact into results/shard-<i> and merges all n
  assert.deepEqual(wf.jobs.merge!.needs, "shard");
  const merge = runs("merge").find((r) => r.includes("experiment merge"))!;
  assert.match(merge, /seq 0 \$\(\(SHARDS - 1\)\).*results\/shard-\$i/);
  const download = uses("merge", "actions/download-artifact")[0]!.with!;
  assert.equal(download.pattern, "shard-*");
  assert.equal(download.path, "results");
});

Deno.test("bench.yml compares with main's last baseline, uploads the report, fails on a regression", () => {
  const steps = wf.jobs.merge!.steps;
  const script = runs("merge").join("\n");
  assert.match(script, /gh run list .*--workflow bench\.yml --branch main/s);
  assert.match(script, /--status success/);
  assert.match(script, /deno task compare results\/baseline\/merged results\/merged/);
  assert.match(script, /--markdown "\$GITHUB_STEP_SUMMARY"/);
  const compare = steps.findIndex((s) => s.id === "compare");
  const fail = steps.findIndex((s) => s.if === "steps.compare.outputs.code == '1'");
  assert.ok(compare >= 0 && fail > compare, "a step after compare fails on its exit code 1");
  assert.match(steps[fail]!.run!, /exit 1/);
  assert.equal(steps.at(-1), steps[fail], "the failing step comes last, after the uploads");
  const names = uses("merge", "actions/upload-artifact").map((s) => s.with!.name);
  assert.deepEqual(names, ["bench-report", "bench-baseline"]);
  assert.match(script, /deno task report .*--out results\/report/);
  assert.match(script, /deno task history results\/merged/);
});

Deno.test("every deno task and repository file bench.yml names exists", async () => {
  for (const m of text.matchAll(/deno task ([\w-]+)/g)) {
    assert.ok(tasks.includes(m[1]!), `deno task ${m[1]} is in deno.json`);
  }
  const experiment = /'(experiments\/[\w/.-]+\.yaml)'/.exec(wf.env.EXPERIMENT ?? "")![1]!;
  assert.ok((await Deno.stat(`${ROOT}${experiment}`)).isFile, experiment);
  assert.equal(wf.on.workflow_dispatch.inputs.experiment.default, experiment);
});
