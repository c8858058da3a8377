/**
 * `deno task quality`: the model card's quality table. Dense greedy LongEval accuracy in
 * LongChat's exact prompt format at record-line levels (50 / 100 / 200 / 300 lines, as
 * LongChat's test files are organised), for each evaluation key source of
 * `data/longeval/keys.ts` (none shares a key part with training), with the prompts' mean length
 * in the model's tokens and a 95% Wilson interval per cell; then perplexity on held-out Brown
 * text. Printed as Markdown; `--out FILE` also writes the cells as CSV.
 *
 * @module
 */
import { generateCasesByLines } from "../../data/longeval/longeval.ts";
import { EVAL_KEY_SOURCES, evalKey, type EvalKeySource } from "../../data/longeval/keys.ts";
import { brownText } from "../../data/brown.ts";
import { InputError, runCli } from "../../runtime/errors.ts";
import { writeFileAtomic } from "../../runtime/atomic.ts";
import { runLongEval, runPerplexity } from "../../data/benchmarks.ts";
import { cpuDecoder } from "../../runtime/decoder.ts";
import { openSession, promptTokens, resolveModelDir } from "../../runtime/session.ts";
import { createProgress } from "../progress.ts";
import { CommandLine } from "./_args.ts";

const HELP = `moa quality: the model card's quality table

Usage: deno task quality [--model DIR] [--lines 50,100,200,300] [--keys words,madeup,mixed]
                         [--cases 100] [--seed 1234] [--ppl 1024] [--out FILE.csv]

  --model DIR   a model folder or embedded name (default moa-tiny)
  --lines L     record-line levels (LongChat's prompt, values up to 50,000)
  --keys K      evaluation key sources (data/longeval/keys.ts): words (adjective-noun pairs
                from words.ts), madeup (made-up pronounceable words), mixed (letters and
                digits in mixed case); none shares a part with training's keys
  --cases N     cases per cell (default 100)
  --seed S      case seed (default 1234)
  --ppl T       held-out Brown perplexity at this length, 0 to skip (default 1024)
  --out FILE    also write the cells as CSV
`;

/** The command's options (see `CommandLine.parse`). */
const OPTIONS =
  `model=moa-tiny lines=50,100,200,300 keys=${EVAL_KEY_SOURCES.join(",")} cases=100 seed=1234 ` +
  "ppl=1024 out";

/** The 95% Wilson score interval of k successes in n trials. */
export function wilson(k: number, n: number): [number, number] {
  if (n === 0) return [0, 1];
  const z = 1.959964, p = k / n, z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

async function main(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, OPTIONS);
  if (!cli) return 0;
  const lines = cli.ints("lines", 2);
  const cases = cli.int("cases", 1);
  const seed = cli.int("seed", 0);
  const pplLength = cli.int("ppl", 0);
  const keys = cli.string("keys")!.split(",").map((k) => k.trim());
  for (const k of keys) {
    if (!EVAL_KEY_SOURCES.includes(k as EvalKeySource)) {
      throw new InputError(`--keys: expected some of ${EVAL_KEY_SOURCES.join(", ")}, got '${k}'`);
    }
  }
  const s = await openSession(await resolveModelDir(cli.string("model")!, "--model"), "cpu");
  const max = s.cpu.model.config.maxPositionEmbeddings;
  const newCache = (n: number) => s.cpu.newCache(n);
  const progress = createProgress(lines.length * keys.length + (pplLength > 0 ? 1 : 0));
  const cells: { lines: number; keys: string; tokens: number; correct: number; n: number }[] = [];
  for (const n of lines) {
    for (const source of keys as EvalKeySource[]) {
      progress.start(`${n} lines, ${source} keys`);
      const cs = generateCasesByLines({
        count: cases,
        lines: n,
        seed,
        countTokens: (t) => promptTokens(s, t).length,
        drawKey: (r) => evalKey(source, r),
      });
      const longest = Math.max(...cs.map((c) => c.tokens!));
      if (longest + 48 > max) {
        throw new InputError(
          `--lines: ${n} lines make prompts of up to ${longest} tokens, past the model's ` +
            `max_position_embeddings ${max}`,
        );
      }
      const m = await runLongEval(
        s,
        cs,
        cpuDecoder(s.cpu, newCache),
        (d, t) => progress.update(d, t),
      );
      const acc = m.find((x) => x.metric === "accuracy")!;
      const tokens = cs.reduce((a, c) => a + c.tokens!, 0) / cs.length;
      const correct = Math.round(acc.value * acc.n);
      cells.push({ lines: n, keys: source, tokens, correct, n: acc.n });
      progress.finish(`${acc.value.toFixed(2)} at ${Math.round(tokens)} tokens`);
    }
  }
  let ppl = NaN;
  if (pplLength > 0) {
    progress.start(`perplexity at ${pplLength}`);
    const text = await brownText("heldout");
    ppl = (await runPerplexity(s, text, pplLength, 4 * pplLength, newCache, (d, t) =>
      progress.update(d, t)))[0]!.value;
    progress.finish(ppl.toFixed(2));
  }
  progress.stop();

  const fmt = (c: (typeof cells)[number]) => {
    const [lo, hi] = wilson(c.correct, c.n);
    return `${(c.correct / c.n).toFixed(2)} [${lo.toFixed(2)}, ${hi.toFixed(2)}]`;
  };
  const out = [
    `| lines | tokens | ${keys.map((k) => `${k} keys`).join(" | ")} | mean |`,
    `|---|---|${keys.map(() => "---|").join("")}---|`,
  ];
  for (const n of lines) {
    const row = cells.filter((c) => c.lines === n);
    const tokens = row.reduce((a, c) => a + c.tokens, 0) / row.length;
    const mean = row.reduce((a, c) => a + c.correct / c.n, 0) / row.length;
    out.push(
      `| ${n} | ${Math.round(tokens)} | ${row.map(fmt).join(" | ")} | ${mean.toFixed(2)} |`,
    );
  }
  console.log(
    `Dense greedy LongEval (${cases} cases per cell, seed ${seed}, 95% Wilson intervals)\n`,
  );
  console.log(out.join("\n"));
  if (pplLength > 0) console.log(`\nHeld-out Brown perplexity at ${pplLength}: ${ppl.toFixed(2)}`);
  const csvFile = cli.string("out");
  if (csvFile) {
    const csv = "lines,keys,tokens,accuracy,correct,n\n" +
      cells.map((x) =>
        [x.lines, x.keys, x.tokens.toFixed(1), (x.correct / x.n).toFixed(4), x.correct, x.n].join(
          ",",
        )
      ).join("\n") + "\n" +
      (pplLength > 0 ? `perplexity_${pplLength},,,${ppl.toFixed(4)},,\n` : "");
    await writeFileAtomic(csvFile, csv);
  }
  return 0;
}

if (import.meta.main) await runCli(main);
