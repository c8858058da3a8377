/**
 * `deno task quality --model DIR [--lengths 1024,2048,4096] [--cases 20]`: the model card's
 * quality table — dense greedy LongEval accuracy with training-vocabulary keys and with held-out
 * keys (words never used as keys in training) at each length, and perplexity on held-out Brown
 * text — printed as Markdown.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateCases } from "../longeval/longeval.ts";
import { HELDOUT_WORDS, TRAIN_WORDS } from "../longeval/words.ts";
import { brownText } from "../brown.ts";
import { InputError, runCli } from "../../runtime/errors.ts";
import { cpuMethod, runLongEval, runPerplexity } from "../../experiments/benchmarks.ts";
import { openSession, promptTokens, resolveModelDir } from "../../experiments/session.ts";

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "moa-tiny" },
      lengths: { type: "string", default: "1024,2048,4096" },
      cases: { type: "string", default: "20" },
      seed: { type: "string", default: "1234" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "Usage: deno task quality [--model DIR] [--lengths 1024,2048,4096] [--cases 20] [--seed 1234]",
    );
    return 0;
  }
  const lengths = values.lengths.split(",").map(Number);
  const cases = Number(values.cases);
  if (lengths.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(cases) || cases < 1) {
    throw new InputError("--lengths and --cases take positive integers");
  }
  const s = await openSession(await resolveModelDir(values.model, "--model"), "cpu");
  const newCache = (n: number) => s.runner.newCache(n);
  const rows: string[] = [
    "| length | LongEval, training keys | LongEval, held-out keys | held-out Brown perplexity |",
    "|---|---|---|---|",
  ];
  for (const length of lengths) {
    const acc = async (words: typeof TRAIN_WORDS) => {
      const cs = generateCases({
        count: cases,
        targetLength: length,
        seed: Number(values.seed),
        countTokens: (t) => promptTokens(s, t).length,
        words,
      });
      const m = await runLongEval(s, cs, cpuMethod(s.runner, newCache), () => {});
      return m.find((x) => x.metric === "accuracy")!.value;
    };
    const [tr, ho] = [await acc(TRAIN_WORDS), await acc(HELDOUT_WORDS)];
    const ppl =
      (await runPerplexity(s, await brownText("heldout"), length, 2 * length, newCache, () => {}))[
        0
      ]!.value;
    rows.push(
      `| ${length} | ${tr.toFixed(2)} (n=${cases}) | ${ho.toFixed(2)} (n=${cases}) | ${
        ppl.toFixed(2)
      } |`,
    );
    console.error(rows.at(-1));
  }
  console.log(rows.join("\n"));
  return 0;
}

if (import.meta.main) await runCli(main);
