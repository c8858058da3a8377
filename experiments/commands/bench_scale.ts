/**
 * `deno task bench scale`: time and peak memory of every stage on moa-tiny and on random
 * checkpoints of real models' shapes, at several lengths, with growth exponents
 * (experiments/bench/scale.ts). Called by `deno task bench` (bench.ts).
 *
 * @module
 */
import { CommandLine } from "./_args.ts";
import {
  benchScale,
  fitsTable,
  namesOf,
  SCALE_MODELS,
  SCALE_STAGES,
  scaleFits,
  type ScaleModel,
  scaleTable,
  scaleTargets,
} from "../bench/scale.ts";
import { textTable } from "../table.ts";

/** The help of `deno task bench scale`. */
export const SCALE_HELP =
  `deno task bench scale: how time and memory grow with model size and length

Usage: deno task bench scale [--quick] [--models tiny,0.5b,1b] [--lengths 1024,2048,4096,8192]
                             [--stages load,calibrate,profile,solve,prefill,decode]
                             [--decode 8] [--block 64] [--jax 1b@4096] [--csv FILE]
                             [--dir results/scale] [--keep] [--timeout 14400]

For each model and length, a child process measures each stage's wall time and peak resident
memory: load (compact BF16 weights), matmul (the engine's 1024³ product: prefill's ceiling),
calibrate (one sample, the model's own greedy answer), profile (attention influence, layers on
the CPU engine; with --jax also in jax-js on WebAssembly), solve (one MILP at 50% density),
prefill and decode per token with a dense cache, and with MoA caches of the solved plan. It
prints the table, the fitted growth exponent of each stage in T (per model) and in parameters
(per length) beside the expected one, and the issue's targets met or missed.

Models: tiny (the embedded moa-tiny), 0.5b (Qwen2.5-0.5B's shape), 1b (Llama-3.2-1B's), 8b
(Llama-3-8B's; 16 GB of BF16, about 17 GiB to load and run: asked for by name, its checkpoint
removed afterwards unless --keep). The shaped checkpoints have random weights and moa-tiny's
tokenizer and are written under --dir on first use (0.5b: 1 GB, 1b: 2.5 GB): they give time and
memory figures, no accuracy figures.

Options:
  --quick           tiny and 0.5b at 1024 and 2048 tokens, 4 decode steps (about 10 minutes)
  --models LIST     of ${Object.keys(SCALE_MODELS).join(", ")} (default tiny,0.5b,1b)
  --lengths LIST    tokens (default 1024,2048,4096,8192)
  --stages LIST     of ${SCALE_STAGES.join(", ")} (default all; decode needs the plan, so it
                    runs calibrate, profile and solve too)
  --decode N        decode steps timed per cache (default 8)
  --block N         the profile's tile size (default 64, the reference's)
  --jax LIST        model@length pairs that also profile in jax-js on WebAssembly (default
                    1b@4096, the issue's memory target, when 1b and 4096 are run)
  --csv FILE        rows as CSV (default results/bench/scale.csv; fits beside it, _fits.csv)
  --dir DIR         where random checkpoints live (default results/scale)
  --keep            keep the 8b checkpoint after the run
  --timeout S       seconds one (model, length) may take (default 14400)

CSV columns (one row per model, length and stage):
  model, shape, params, checkpoint_bytes   which model: its name, architecture, parameters and
                                           bytes on disk
  length                                   tokens (profile, prefill, and decode's context)
  stage                                    load | matmul | calibrate | profile |
                                           profile_jax_wasm | solve | prefill | decode_dense |
                                           prefill_moa50 | decode_moa50 | failed
  seconds                                  the stage's wall time (decode: all its steps)
  per_token_s                              decode: seconds per token
  gflops                                   prefill and matmul: useful GFLOP/s
  peak_rss_bytes, base_rss_bytes           peak resident memory during the stage (model
                                           included) and resident memory when it started
  wasm_bytes                               profile_jax_wasm: jax-js's WebAssembly memory
  engine, note                             the CPU engine; anything else the row needs said
Fits (FILE_fits.csv): what, over (length | params), at, exponent, expected, points.
`;

/**
 * Runs the command.
 * @param args the arguments after `scale`
 * @returns the exit code
 */
export async function scaleMain(args: string[]): Promise<number> {
  const cli = CommandLine.parse(
    args,
    SCALE_HELP,
    "quick! models lengths stages decode block jax csv=results/bench/scale.csv " +
      "dir=results/scale keep! timeout=14400",
  );
  if (!cli) return 0;
  const quick = cli.flag("quick");
  const models = namesOf(
    "models",
    cli.string("models") ?? (quick ? "tiny,0.5b" : "tiny,0.5b,1b"),
    Object.keys(SCALE_MODELS) as ScaleModel[],
  );
  const lengths = cli.string("lengths") ? cli.ints("lengths", 1) : quick ? [1024, 2048] : [
    1024,
    2048,
    4096,
    8192,
  ];
  const stages = namesOf("stages", cli.string("stages") ?? SCALE_STAGES.join(","), SCALE_STAGES);
  const jax = cli.string("jax")?.split(",").filter((s) => s !== "") ??
    (models.includes("1b") && lengths.includes(4096) ? ["1b@4096"] : []);
  const rows = await benchScale({
    models,
    lengths,
    stages,
    decode: cli.string("decode") ? cli.int("decode", 1) : quick ? 4 : 8,
    block: cli.string("block") ? cli.int("block", 1) : 64,
    jax,
    dir: cli.string("dir")!,
    csv: cli.string("csv")!,
    keep: cli.flag("keep"),
    timeout: cli.int("timeout", 1),
    log: (l) => console.error(l),
  });
  console.log(scaleTable(rows));
  console.log("\nGrowth exponents (log-log least squares):");
  console.log(fitsTable(scaleFits(rows)));
  const targets = scaleTargets(rows);
  if (targets.length > 0) console.log("\nTargets:\n" + textTable(targets));
  console.log(`\nrows written to ${cli.string("csv")} (random weights: time and memory only)`);
  return 0;
}
