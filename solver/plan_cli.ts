/**
 * `deno task plan --model DIR --density D [--out FILE] …`: the whole MoA chain for one model and
 * density — calibrate, profile, optimise, validate — written as a plan file.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError, runCli } from "../runtime/errors.ts";
import { openSession, resolveModelDir } from "../experiments/session.ts";
import { MAX_PROFILE_LENGTH } from "../experiments/runner.ts";
import type { CalibrationKind } from "../data/calibration.ts";
import { makePlan } from "./pipeline.ts";
import { writePlan } from "./plan.ts";

const HELP = `moa plan: per-head sparse-attention rules for a density budget

Usage: deno task plan --model DIR --density D [--out FILE] [--lengths 512,1024] [--serving N]
                      [--samples 8] [--block 32] [--sink 32] [--seed 0]
                      [--calibration model|reference|context] [--time-limit S]
                      [--influence abs|signed]

Calibrates on long-range prompts answered by the model itself, profiles every kv head's
attention influence at each --lengths, solves the MILP for the Pareto set under the density
budget at every profiled length and the serving length, picks the plan with the lowest mean loss
over the profiled lengths and 1.5× the longest (at most the serving length), and writes it
(default: plan-d<D>.json).

--influence abs sums |E| over the attention a rule drops (the reference's estimate); signed sums
E itself, the first-order loss change (deno task validity compares the two on a model).
`;

function numbers(name: string, v: string): number[] {
  const xs = v.split(",").map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x < 1)) {
    throw new InputError(`--${name}: expected positive integers separated by commas, got '${v}'`);
  }
  return xs;
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      density: { type: "string" },
      out: { type: "string" },
      lengths: { type: "string", default: "512,1024" },
      serving: { type: "string" },
      samples: { type: "string", default: "8" },
      block: { type: "string", default: "32" },
      sink: { type: "string", default: "32" },
      seed: { type: "string", default: "0" },
      calibration: { type: "string", default: "model" },
      "time-limit": { type: "string", default: "60" },
      influence: { type: "string", default: "abs" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model) throw new InputError("--model DIR is required (see --help)");
  const density = Number(values.density);
  if (!(density > 0 && density <= 1)) {
    throw new InputError(`--density: expected a number in (0, 1], got '${values.density}'`);
  }
  const lengths = numbers("lengths", values.lengths);
  lengths.forEach((n) => {
    if (n > MAX_PROFILE_LENGTH) {
      throw new InputError(
        `--lengths: ${n} exceeds the ${MAX_PROFILE_LENGTH} tokens the CPU profiler holds`,
      );
    }
  });
  const serving = values.serving
    ? numbers("serving", values.serving)[0]!
    : 2 * Math.max(...lengths);
  const [samples, block, sink] = [
    numbers("samples", values.samples)[0]!,
    numbers("block", values.block)[0]!,
    Number(values.sink),
  ];
  if (!Number.isInteger(sink) || sink < 0) {
    throw new InputError(`--sink: expected a non-negative integer, got '${values.sink}'`);
  }
  const calibration = values.calibration as CalibrationKind;
  if (!["model", "reference", "context"].includes(calibration)) {
    throw new InputError(
      `--calibration: expected model, reference or context, got '${values.calibration}'`,
    );
  }
  const influence = values.influence;
  if (influence !== "abs" && influence !== "signed") {
    throw new InputError(`--influence: expected abs or signed, got '${influence}'`);
  }
  const dir = await resolveModelDir(values.model, "--model");
  const s = await openSession(dir, "cpu");
  const t0 = performance.now();
  const { plan, pareto } = await makePlan(s.runner, s.tokenizer, values.model, {
    density,
    lengths,
    servingLength: serving,
    samples,
    block,
    sink,
    seed: Number(values.seed),
    calibration,
    influence,
    timeLimit: Number(values["time-limit"]),
  }, (l) => console.error(l));
  const out = values.out ?? `plan-d${density}.json`;
  await writePlan(out, plan);
  console.error(
    `${pareto.length} Pareto plans; chose validation loss ${
      (plan.provenance.validation_loss as number).toFixed(4)
    } in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
  console.log(out);
  return 0;
}

if (import.meta.main) await runCli(main);
