/**
 * `deno task heads --model DIR [--length N] [--prompts K] [--out FILE.csv] [--json]`: per layer and
 * head, the mean attention distance and the attention mass on the first 64 tokens, measured on
 * LongEval prompts; printed as a table and written as CSV.
 *
 * @module
 */
// @ts-types="@types/d3-dsv"
import { csvFormat } from "d3-dsv";
import { generateCases } from "../../data/longeval/longeval.ts";
import { HELDOUT_WORDS } from "../../data/longeval/words.ts";
import { writeFileAtomic } from "../../runtime/atomic.ts";
import { InputError, runCli } from "../../runtime/errors.ts";
import { textTable } from "../table.ts";
import { CommandLine } from "./_args.ts";
import { openSession, promptTokens, resolveModelDir } from "../../runtime/session.ts";
import { headStats, inductionScores } from "../../solver/heads.ts";

const HELP = `moa heads: how far back each attention head looks

Usage: deno task heads --model DIR [--length 1024] [--prompts 4] [--sink 64] [--out FILE.csv] [--json]
                       [--induction-vocab V] [--induction-span 64]

Runs K LongEval prompts of about N tokens (keys from the held-out word list) and reports, per
layer and head, the mean attention distance in tokens (queries in the second half of the prompt)
and the attention mass on the first --sink tokens. Local heads have small distances; long-range
heads reach back over a large share of the context.

Then the induction test: 8 sequences of random tokens (ids 3 … 3 + V − 1; default the whole
vocabulary) repeated once; per head, the attention mass on the previous token, on the token
after the current one's first occurrence (an induction head's target) and on that occurrence
itself (a duplicate-token head's), over the second copies;
and the share of the second copy the model predicts (copy accuracy). Retrieval needs heads that
copy over the whole vocabulary.
`;

/** The command's options (see `CommandLine.parse`). */
const OPTIONS =
  "model length=1024 prompts=4 sink=64 out json! seed=0 induction-vocab induction-span=64";

async function main(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, OPTIONS);
  if (!cli) return 0;
  const model = cli.required("model", "DIR");
  const length = cli.int("length", 1);
  const count = cli.int("prompts", 1);
  const sinkTokens = cli.int("sink", 1);
  const seed = Number(cli.string("seed"));
  const session = await openSession(await resolveModelDir(model, "--model"), "cpu");
  const cases = generateCases({
    count,
    targetLength: length,
    seed,
    countTokens: (t) => promptTokens(session, t).length,
    words: HELDOUT_WORDS,
  });
  const prompts = cases.map((c) => promptTokens(session, c.prompt));
  const stats = await headStats(session.cpu, prompts, {
    sinkTokens,
    minQuery: Math.floor(length / 2),
  });
  const V = session.cpu.model.config.vocabSize;
  const vocab = cli.string("induction-vocab") === undefined ? V - 3 : cli.int("induction-vocab", 1);
  if (vocab > V - 3) {
    throw new InputError(
      `--induction-vocab: at most ${V - 3} (the model's ordinary ids), got ${vocab}`,
    );
  }
  const ind = await inductionScores(session.cpu, {
    span: cli.int("induction-span", 1),
    sequences: 8,
    vocab,
    seed,
  });
  const rows = stats.map((s, i) => ({
    layer: s.layer,
    head: s.head,
    mean_distance: +s.meanDistance.toFixed(2),
    distance_share: +(s.meanDistance / s.meanContext).toFixed(4),
    sink_mass: +s.sinkMass.toFixed(4),
    mean_context: +s.meanContext.toFixed(1),
    prev_token_mass: +ind.heads[i]!.prevMass.toFixed(4),
    induction_mass: +ind.heads[i]!.inductionMass.toFixed(4),
    duplicate_mass: +ind.heads[i]!.duplicateMass.toFixed(4),
  }));
  const out = cli.string("out");
  if (out) await writeFileAtomic(out, csvFormat(rows) + "\n");
  if (cli.flag("json")) console.log(JSON.stringify(rows));
  else {
    console.log(textTable(rows));
    console.log(
      `copy accuracy on repeated random tokens (alphabet ${vocab}): ${
        ind.copyAccuracy.toFixed(3)
      } (prev_token_mass and induction_mass are measured there)`,
    );
  }
  return 0;
}

if (import.meta.main) await runCli(main);
