/**
 * `deno task train-tiny [--config FILE] [--out DIR] [--quick] [--max-steps N] [--device D]`: trains moa-tiny
 * (or any recipe) with checkpoints that resume; `--quick` runs a small recipe in under a minute.
 *
 * @module
 */
// @ts-types="@types/cli-progress"
import cliProgress from "cli-progress";
import process from "node:process";
import { InputError, runCli } from "../../runtime/errors.ts";
import { CommandLine, jaxDevice } from "./_args.ts";
import { loadTrainConfig, totalSteps } from "../../data/train/config.ts";
import {
  exportCheckpoint,
  probeCheckpoint,
  rewindTo,
  type StepReport,
  train,
} from "../../data/train/train.ts";

/** The recipes' folder. */
const HERE = new URL("../../data/train/", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;

const HELP = `moa train-tiny: train the embedded long-context model

Usage: deno task train-tiny [--config FILE] [--out DIR] [--quick] [--max-steps N] [--workers N]
                            [--device wasm|webgpu] [--program-gib N] [--max-minutes M] [--no-eval]
       deno task train-tiny [--config FILE] [--out DIR] --export DIR | --probe [PHASE] | --rewind STEP

  --config FILE   training recipe (default data/train/moa-tiny.json; see data/train/config.ts)
  --quick         the small recipe data/train/quick.json (a few hundred steps, under a minute)
  --out DIR       output folder (default results/train/<recipe name>); holds tokenizer.json,
                  checkpoints, loss.csv, eval.csv and, when done, model/ in the HF layout
  --max-steps N   stop after N steps of this invocation (run the recipe in pieces)
  --workers N     share each step's sequences among N gradient workers, one core each
                  (data parallel; phases with B = 1 stay in one thread); default 1
  --device D      where the gradients run: wasm (CPU, the default) or webgpu (a GPU adapter;
                  on a lent GPU machine see data/train/train-gpu.sh)
  --program-gib N memory a whole-model gradient program may take before a step goes layer by
                  layer (same gradient; default 3, for wasm's 4 GiB; e.g. 48 on an H200)
  --max-minutes M stop after the first step past M minutes of wall time, with a checkpoint
  --no-eval       skip the recipe's evaluations (eval.csv, kinds.csv; CPU decoding), e.g. on a
                  lent GPU machine; score the exported model with deno task quality afterwards
  --export DIR    write the latest checkpoint of --out as a Hugging Face folder and exit
  --rewind STEP   resume the next run from the kept checkpoint of STEP (each phase's last step
                  is kept), e.g. to redo later phases after editing them; exits
  --probe [PHASE] score the latest checkpoint of --out on fresh examples of each kind of a phase
                  (default: the phase it is in), teacher-forced: copies for repeat, the value
                  digits for LongEval, every token for brown; prints a table and exits

Rerunning with the same --out resumes from the last checkpoint; the data of every step is
seeded by (seed, step), so a resumed run is the same run. Copy out/model/ to
data/models/moa-tiny/ to ship a trained model.
`;

/** The command's options (see `CommandLine.parse`). */
const OPTIONS =
  "config out quick! max-steps workers device program-gib max-minutes no-eval! export probe! rewind";

async function main(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, OPTIONS, 1);
  if (!cli) return 0;
  const config = cli.string("config");
  if (cli.flag("quick") && config) {
    throw new InputError("--quick and --config exclude each other");
  }
  const file = config ?? `${HERE}${cli.flag("quick") ? "quick" : "moa-tiny"}.json`;
  const cfg = await loadTrainConfig(file);
  const maxSteps = cli.string("max-steps") === undefined ? undefined : cli.int("max-steps", 1);
  const workers = cli.string("workers") === undefined ? 1 : cli.int("workers", 1);
  const device = jaxDevice(cli.string("device") ?? "wasm");
  const gib = cli.string("program-gib") === undefined ? undefined : cli.int("program-gib", 1);
  const minutes = cli.string("max-minutes");
  const maxMinutes = minutes === undefined ? undefined : Number(minutes);
  if (maxMinutes !== undefined && !(maxMinutes > 0)) {
    throw new InputError(`--max-minutes: expected a positive number, got '${minutes}'`);
  }
  const name = file.split("/").at(-1)!.replace(/\.json$/, "");
  const out = cli.string("out") ?? `${ROOT}results/train/${name}`;
  const [arg] = cli.positionals;
  if (arg !== undefined && !cli.flag("probe")) {
    throw new InputError(`unexpected argument '${arg}' (see --help)`);
  }
  if (cli.flag("probe")) {
    let phase: number | undefined;
    if (arg !== undefined) {
      phase = Number(arg);
      if (!Number.isInteger(phase)) {
        throw new InputError(`--probe: expected a phase number, got '${arg}'`);
      }
    }
    const r = await probeCheckpoint(cfg, out, phase);
    console.log(`step ${r.step} of ${out}, phase ${r.phase} examples (T = ${r.T}):`);
    console.log("kind        scored   accuracy  nll     n");
    for (const k of r.kinds) {
      console.log(
        `${k.kind.padEnd(12)}${k.scored.padEnd(9)}${k.accuracy.toFixed(3).padStart(8)}  ${
          k.nll.toFixed(3).padStart(6)
        }  ${k.n}`,
      );
    }
    return 0;
  }
  const rewind = cli.string("rewind");
  if (rewind !== undefined) {
    const step = Number(rewind);
    if (!Number.isInteger(step) || step < 1) {
      throw new InputError(`--rewind: expected a step number, got '${rewind}'`);
    }
    await rewindTo(out, step);
    console.log(`${out}: the next run resumes from step ${step}`);
    return 0;
  }
  const exportDir = cli.string("export");
  if (exportDir) {
    const step = await exportCheckpoint(cfg, out, exportDir);
    console.log(
      `wrote the step-${step} checkpoint of ${out} as a Hugging Face folder: ${exportDir}`,
    );
    return 0;
  }
  const total = totalSteps(cfg);
  const tty = Deno.stderr.isTerminal();
  const bar = tty
    ? new cliProgress.SingleBar({
      format:
        "{bar} {value}/{total} steps | phase {phase} | loss {loss} | {tps} tok/s | {eta_formatted} left",
      stream: process.stderr,
      hideCursor: true,
    }, cliProgress.Presets.shades_classic)
    : null;
  let lastLine = 0;
  let smooth = NaN;
  const onStep = (r: StepReport) => {
    smooth = Number.isNaN(smooth) ? r.loss : 0.9 * smooth + 0.1 * r.loss;
    const payload = { phase: r.phase, loss: smooth.toFixed(3), tps: r.tokensPerS.toFixed(0) };
    if (bar) {
      if (bar.getProgress() === 0 && r.step > 0) bar.start(total, r.step - 1, payload);
      bar.update(r.step, payload);
    } else if (performance.now() - lastLine > 10_000 || r.step === total) {
      lastLine = performance.now();
      console.error(
        `step ${r.step}/${total} phase ${r.phase} loss ${smooth.toFixed(4)} lr ${
          r.lr.toExponential(2)
        } ` +
          `|g| ${r.gradNorm.toFixed(2)} ${r.tokensPerS.toFixed(0)} tok/s`,
      );
    }
  };
  bar?.start(total, 0, { phase: 0, loss: "-", tps: "-" });
  const log = (l: string) => {
    if (bar) bar.stop();
    console.error(l);
  };
  const r = await train(cfg, {
    out,
    ...(maxSteps ? { maxSteps } : {}),
    ...(maxMinutes ? { maxSeconds: 60 * maxMinutes } : {}),
    ...(gib ? { programBytes: gib * 2 ** 30 } : {}),
    workers,
    device,
    evaluate: !cli.flag("no-eval"),
    onStep,
    log,
  });
  bar?.stop();
  const first = r.losses.slice(0, 10), last = r.losses.slice(-10);
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
  console.log(
    `${r.done ? "finished" : "paused"} at step ${r.steps}/${total}: ${r.tokens} tokens, ${
      (r.seconds / 60).toFixed(1)
    } min; ` +
      `loss ${mean(first).toFixed(3)} → ${mean(last).toFixed(3)} this run` +
      (r.done ? `; model in ${out}/model` : ""),
  );
  return 0;
}

if (import.meta.main) await runCli(main);
