/**
 * experiments/cluster/slurm.sh against a real single-node Slurm started here
 * (experiments/cluster/local_slurm.sh: munged, slurmctld and slurmd on localhost): a 2-shard
 * array job and its merge job on a small random model, whose merged metrics.csv must equal the
 * unsharded run's apart from the timing columns. Skipped, saying why, where Slurm cannot start
 * (no slurm-wlm or munge, not root, ports taken).
 *
 * @module
 */
import assert from "node:assert/strict";
import { writeRandomModel } from "../../data/models/init_random.ts";
import { readCasesCsv, readMetricsCsv, type Row } from "../csv.ts";
import { SILENT_PROGRESS } from "../progress.ts";
import { type ResolvedRun, runExperiment } from "../run.ts";
import { loadExperiment } from "../schema.ts";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const TMP = await Deno.makeTempDir({ prefix: "moa_slurm_" });
const SLURM = `${TMP}/slurm`;

/** Starts the local Slurm; null when it started, else why it could not. */
async function startSlurm(): Promise<string | null> {
  if (Deno.build.os !== "linux") return "Slurm runs on Linux only";
  const port = String(20000 + Math.floor(Math.random() * 9000) * 2);
  try {
    const p = await new Deno.Command("bash", {
      args: [`${HERE}/local_slurm.sh`, "start", SLURM],
      env: { MOA_SLURM_PORT: port },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (p.success) return null;
    const why = new TextDecoder().decode(p.stderr).trim().split("\n")[0] ?? "";
    return `Slurm did not start: ${why.replace(/^.*local_slurm\.sh: /, "")}`;
  } catch (e) {
    return `Slurm did not start: ${(e as Error).message}`;
  }
}

async function stopSlurm(): Promise<void> {
  await new Deno.Command("bash", { args: [`${HERE}/local_slurm.sh`, "stop", SLURM] }).output();
}

const why = await startSlurm();
globalThis.addEventListener("unload", () => {
  new Deno.Command("bash", { args: [`${HERE}/local_slurm.sh`, "stop", SLURM] }).outputSync();
  Deno.removeSync(TMP, { recursive: true });
});

/** Metrics that measure time: they differ between any two computations of a cell. */
const TIMING = new Set(["prefill_tokens_per_s", "decode_tokens_per_s"]);
/** A row without its timing columns: the start time, and the value of a timed metric. */
const untimed = (r: Row) => ({
  ...r,
  started_at: "",
  value: TIMING.has(String(r.metric)) ? "" : r.value,
});

/**
 * Whether two metrics.csv values agree: equal text, or numbers within a relative 1e-9 (the
 * native CPU engine's threads may sum in another order in another process: perplexity differed
 * in the 12th digit between the shard jobs and the test process).
 */
const sameValue = (a: string | number, b: string | number) =>
  String(a) === String(b) ||
  Math.abs(Number(a) - Number(b)) <= 1e-9 * Math.max(Math.abs(Number(a)), Math.abs(Number(b)));

Deno.test({
  name:
    `slurm.sh runs a 2-shard array job and a merge on a real Slurm; the merged CSV is the unsharded run's${
      why ? ` (skipped: ${why})` : ""
    }`,
  ignore: why !== null,
  async fn() {
    try {
      const model = `${TMP}/model`;
      await writeRandomModel(model, { layers: 2, hidden: 32, heads: 2, kvHeads: 1, seed: 1 });
      const file = `${TMP}/sharded.yaml`;
      await Deno.writeTextFile(
        file,
        [
          "name: sharded",
          `model: ${model}`,
          "methods: [dense, streaming]",
          "densities: [0.5]",
          "lengths: [640]",
          "benchmarks:",
          "  longeval: {cases: 2}",
          "  perplexity: {tokens: 700}",
          "  throughput: {decode: 4, batch: 1}",
          "seed: 3",
          "backend: cpu",
        ].join("\n") + "\n",
      );
      const out = `${TMP}/out`;
      const run = await new Deno.Command("bash", {
        args: [`${HERE}/slurm.sh`, file, "2"],
        cwd: ROOT,
        env: {
          SLURM_CONF: `${SLURM}/slurm.conf`,
          MOA_OUT: out,
          MOA_CACHE: `${TMP}/cache-slurm`,
          MOA_DENO: Deno.execPath(),
          MOA_WAIT: "1",
          XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
      const logs = async () => {
        const parts = [];
        for (const f of ["shard-0.log", "shard-1.log", "merge.log"]) {
          parts.push(`${f}:\n${await Deno.readTextFile(`${out}/logs/${f}`).catch(() => "(none)")}`);
        }
        return parts.join("\n").slice(-3000);
      };
      assert.ok(run.success, `slurm.sh failed:\n${said}\n${await logs()}`);
      assert.match(said, /array job \d+: 2 shards/);
      for (const i of [0, 1]) {
        const r = JSON.parse(
          await Deno.readTextFile(`${out}/shard${i}/experiment.resolved.json`),
        ) as ResolvedRun;
        assert.deepEqual(r.shard, { index: i, count: 2 }, `array task ${i} ran shard ${i}/2`);
      }
      // the unsharded run, in this process with its own cache: nothing is shared with the shards
      await runExperiment(await loadExperiment(file), {
        out: `${TMP}/unsharded`,
        cacheDir: `${TMP}/cache-unsharded`,
        progress: SILENT_PROGRESS,
        notice: () => {},
      });
      const merged = await readMetricsCsv(`${out}/merged/metrics.csv`);
      const whole = await readMetricsCsv(`${TMP}/unsharded/metrics.csv`);
      assert.equal(merged.length, whole.length);
      assert.ok(merged.length >= 6 * 2, "6 cells, each with rows");
      const rest = (r: Row) => ({ ...untimed(r), value: "" });
      assert.deepEqual(merged.map(rest), whole.map(rest), "every column but the values");
      merged.forEach((r, i) => {
        const w = untimed(whole[i]!).value, m = untimed(r).value;
        assert.ok(sameValue(m, w), `${r.cell} ${r.metric}: ${m} merged, ${w} unsharded`);
      });
      assert.deepEqual(
        await readCasesCsv(`${out}/merged/cases.csv`),
        await readCasesCsv(`${TMP}/unsharded/cases.csv`),
      );
      // the merge job also drew the report
      assert.ok((await Deno.stat(`${out}/report/index.html`)).isFile);
    } finally {
      await stopSlurm();
    }
  },
});
