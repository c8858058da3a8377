/**
 * `deno task validity --model DIR [--length 512] [--pairs 100] …`: the Spearman correlation
 * between the profiler's predicted loss increase and the measured one, over random
 * (kv head, rule) pairs; CSV of the pairs with `--out`.
 *
 * @module
 */
// @ts-types="@types/d3-dsv"
import { csvFormat } from "d3-dsv";
import { writeFileAtomic } from "../../runtime/atomic.ts";
import { runCli } from "../../runtime/errors.ts";
import { openSession, resolveModelDir } from "../../runtime/session.ts";
import { validityCheck } from "../../solver/validity.ts";
import { CommandLine } from "./_args.ts";

const HELP = `moa validity: does profiling predict the real loss increase of a rule?

Usage: deno task validity --model DIR [--length 512] [--pairs 100] [--samples 12] [--block 32]
                          [--sink 32] [--seed 0] [--out FILE.csv]

Applies one elastic rule to one kv head (all others dense) for random pairs, measures the loss
increase on calibration samples, and prints the Spearman correlation with the prediction
(target ≥ 0.8 on moa-tiny). Fewer samples rank poorly: on moa-tiny at 512 tokens the token-level
Σ|E| ranked at 0.26 with 4 samples and 0.92 with 12 (each sample asks about one LongEval line, so
a few samples say little about which lines a rule loses).
`;

/** The command's options (see `CommandLine.parse`). */
const OPTIONS = "model length=512 pairs=100 samples=12 block=32 sink=32 seed=0 out";

async function main(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, OPTIONS);
  if (!cli) return 0;
  const model = cli.required("model", "DIR");
  const s = await openSession(await resolveModelDir(model, "--model"), "cpu");
  const r = await validityCheck(s.cpu, s.tokenizer, {
    length: cli.int("length", 64),
    pairs: cli.int("pairs", 3),
    samples: cli.int("samples", 1),
    block: cli.int("block", 1),
    sink: cli.int("sink", 0),
    seed: cli.int("seed", 0),
  }, (d) => {
    if (d % 20 === 0) console.error(`${d} pairs measured`);
  });
  const out = cli.string("out");
  if (out) await writeFileAtomic(out, csvFormat(r.pairs) + "\n");
  console.log(
    `Spearman of predicted vs measured loss over ${r.pairs.length} (kv head, rule) pairs:`,
  );
  console.log(
    `  influence abs    (Σ|E| over dropped tiles, the profiler's):  ${r.spearman.toFixed(3)}`,
  );
  console.log(
    `  the same with each query block's band at its own length:    ${r.spearmanElastic.toFixed(3)}`,
  );
  console.log(
    `  influence signed (ΣE over dropped tiles):                   ${
      r.spearmanBlockSigned.toFixed(3)
    }`,
  );
  console.log(
    `  token level, each query's own window: Σ|E| ${r.spearmanToken.toFixed(3)}, ΣE ${
      r.spearmanSigned.toFixed(3)
    }`,
  );
  return 0;
}

if (import.meta.main) await runCli(main);
