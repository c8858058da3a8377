/**
 * `deno task plan …`: plan files from the command line.
 *
 * - `deno task plan --model DIR --density D [--out FILE] …` (the default subcommand): the whole
 *   MoA chain for one model and density — calibrate, profile, optimise, validate — written as a
 *   plan file.
 * - `deno task plan import FILE --model DIR [--out FILE] …`: a plan in the reference's layout
 *   (`moa_alpha_beta.json`, one rule per query head) as a plan file for the model (one rule per
 *   kv head).
 * - `deno task plan export PLAN [--out FILE] [--model DIR]`: a plan file in the reference's
 *   layout, one rule per query head.
 *
 * @module
 */
import { basename } from "node:path";
import { InputError, runCli } from "../../runtime/errors.ts";
import { parseConfig } from "../../runtime/config.ts";
import type { ModelConfig } from "../../runtime/model.ts";
import { SPAN_SEMANTICS, type SpanSemantics } from "../../runtime/spans.ts";
import { writeFileAtomic } from "../../runtime/atomic.ts";
import { openSession, resolveModelDir } from "../../runtime/session.ts";
import { MAX_PROFILE_LENGTH } from "../../solver/profile.ts";
import type { CalibrationKind } from "../../data/calibration.ts";
import { makePlan } from "../../solver/pipeline.ts";
import {
  exportReferencePlan,
  formatReferencePlan,
  importReferencePlanFor,
  type Plan,
  readPlan,
  writePlan,
} from "../../solver/plan.ts";
import { ruleDensity } from "../../solver/rules.ts";
import { CommandLine } from "./_args.ts";

const HELP = `moa plan: per-head sparse-attention rules for a density budget

Usage: deno task plan --model DIR --density D [--out FILE] [--lengths 512,1024] [--serving N]
                      [--samples 8] [--block 32] [--sink 32] [--seed 0]
                      [--calibration model|reference|context] [--time-limit S]
                      [--influence abs|signed] [--spans per-query|reference]
       deno task plan import FILE --model DIR [--out FILE] [--spans reference|per-query]
                      [--sink 64] [--block 64] [--lengths 2048,4096,8192] [--serving 16384]
                      [--density D]
       deno task plan export PLAN [--out FILE] [--model DIR]

Without a subcommand: calibrates on long-range prompts answered by the model itself, profiles
every kv head's attention influence at each --lengths, solves the MILP for the Pareto set under
the density budget at every profiled length and the serving length, picks the plan with the
lowest mean loss over the profiled lengths and 1.5× the longest (at most the serving length), and
writes it (default: plan-d<D>.json).

--influence abs sums |E| over the attention a rule drops (the reference's estimate); signed sums
E itself, the first-order loss change (deno task validity compares the two on a model).
--spans says how the caches turn a rule into windows (runtime/spans.ts): per-query (default,
query i keeps α + β·(i+1) keys) or reference (the MoA reference runtime's cache); the profiler
charges each rule what that semantics drops.

import: reads a plan in the MoA reference's layout ({"alphas": [[…]], "betas": [[…]]}, one list
per layer, one rule per query head, or per kv head) and writes a plan file for the model in DIR
(default: FILE's name with .plan.json). For a grouped-query model each kv head takes the widest
rule of its query heads (the most keys kept over --lengths and --serving); groups whose query
heads disagree are listed on stderr. The reference's file lacks everything else: --spans
(default reference, so the plan runs as the reference runs it), --sink and --block (default the
reference's 64), --lengths and --serving (default the reference's 2048,4096,8192 and 16384), and
--density (default: the plan's mean density at --serving).

export: writes a plan file in the reference's layout, each kv head's rule repeated for its query
heads (default: PLAN's name with .reference.json). The model (for its head counts) is --model or
the plan's own model field.
`;

/** The subcommands besides the default (the MoA chain). */
const SUBCOMMANDS = ["import", "export"] as const;

/** The options of the MoA chain, `plan import` and `plan export` (see `CommandLine.parse`). */
const CHAIN_OPTIONS = "model density out lengths=512,1024 serving samples=8 block=32 sink=32 " +
  "seed=0 calibration=model time-limit=60 influence=abs spans=per-query";
const IMPORT_OPTIONS =
  "model out spans=reference sink=64 block=64 lengths=2048,4096,8192 serving density";
const EXPORT_OPTIONS = "model out";

async function main(args: string[]): Promise<number> {
  const first = args[0];
  if (first === "import") return await importMain(args.slice(1));
  if (first === "export") return await exportMain(args.slice(1));
  if (first !== undefined && !first.startsWith("-")) {
    throw new InputError(
      `unknown subcommand '${first}'; expected ${SUBCOMMANDS.join(" or ")}, or options for the ` +
        `MoA chain (see --help)`,
    );
  }
  return await makeMain(args);
}

/** `deno task plan --model DIR --density D …`: the MoA chain. */
async function makeMain(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, CHAIN_OPTIONS);
  if (!cli) return 0;
  const model = cli.required("model", "DIR");
  const density = cli.density("density");
  const lengths = cli.ints("lengths", 1);
  lengths.forEach((n) => {
    if (n > MAX_PROFILE_LENGTH) {
      throw new InputError(
        `--lengths: ${n} exceeds the ${MAX_PROFILE_LENGTH} tokens the CPU profiler holds`,
      );
    }
  });
  const serving = cli.string("serving") ? cli.int("serving", 1) : 2 * Math.max(...lengths);
  const samples = cli.int("samples", 1);
  const calibration = cli.string("calibration") as CalibrationKind;
  if (!["model", "reference", "context"].includes(calibration)) {
    throw new InputError(
      `--calibration: expected model, reference or context, got '${calibration}'`,
    );
  }
  const influence = cli.string("influence");
  if (influence !== "abs" && influence !== "signed") {
    throw new InputError(`--influence: expected abs or signed, got '${influence}'`);
  }
  const { spans, sink, block } = spanGrid(cli);
  const dir = await resolveModelDir(model, "--model");
  const s = await openSession(dir, "cpu");
  const t0 = performance.now();
  const { plan, pareto } = await makePlan(s.cpu, s.tokenizer, model, {
    density,
    lengths,
    servingLength: serving,
    samples,
    block,
    sink,
    seed: Number(cli.string("seed")),
    calibration,
    influence,
    spans,
    timeLimit: Number(cli.string("time-limit")),
  }, (l) => console.error(l));
  const out = cli.string("out") ?? `plan-d${density}.json`;
  await writePlan(out, plan);
  console.error(
    `${pareto.length} Pareto plans; chose validation loss ${
      (plan.provenance.validation_loss as number).toFixed(4)
    } in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
  console.log(out);
  return 0;
}

/**
 * `--spans`, `--sink` and `--block`: a sink of whole blocks under the reference semantics.
 * @throws {InputError} naming the option
 */
function spanGrid(cli: CommandLine): { spans: SpanSemantics; sink: number; block: number } {
  const v = cli.string("spans") ?? "";
  if (!(SPAN_SEMANTICS as readonly string[]).includes(v)) {
    throw new InputError(`--spans: expected ${SPAN_SEMANTICS.join(" or ")}, got '${v}'`);
  }
  const spans = v as SpanSemantics, block = cli.int("block", 1), sink = cli.int("sink", 0);
  if (spans === "reference" && sink % block !== 0) {
    throw new InputError(
      `--sink: ${sink} is not a multiple of --block ${block}, which the reference span ` +
        `semantics needs (it keeps whole sink blocks)`,
    );
  }
  return { spans, sink, block };
}

/**
 * The one file argument of a subcommand.
 * @throws {InputError} `<what>, got <count> (see --help)`
 */
function onePositional(cli: CommandLine, what: string): string {
  const n = cli.positionals.length;
  if (n !== 1) throw new InputError(`${what}, got ${n} (see --help)`);
  return cli.positionals[0]!;
}

/** Reads a model folder's config.json (only the shape is needed). */
async function modelConfig(dir: string): Promise<ModelConfig> {
  const path = `${dir}/config.json`;
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof SyntaxError) throw new InputError(`${path}: not valid JSON: ${e.message}`);
    throw e;
  }
  return parseConfig(json, path);
}

/** `name.json` → `name<suffix>` in the current folder. */
function outName(file: string, suffix: string): string {
  return basename(file).replace(/\.json$/i, "") + suffix;
}

/** `deno task plan import FILE --model DIR …`: a reference plan as a plan file for a model. */
async function importMain(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, IMPORT_OPTIONS, Infinity);
  if (!cli) return 0;
  const file = onePositional(cli, "plan import: expected one reference plan FILE");
  const model = cli.required("model", "DIR", "plan import: ");
  const { spans, sink, block } = spanGrid(cli);
  const lengths = cli.ints("lengths", 1);
  const servingLength = cli.string("serving") ? cli.int("serving", 1) : Math.max(16384, ...lengths);
  if (servingLength < Math.max(...lengths)) {
    throw new InputError(
      `--serving: ${servingLength} is shorter than the longest of --lengths (${
        Math.max(...lengths)
      })`,
    );
  }
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new InputError(`${file}: file not found`);
    throw e;
  }
  const dir = await resolveModelDir(model, "--model");
  const config = await modelConfig(dir);
  const meta = { model, sink, block, density: 1, lengths, servingLength, spans };
  const { plan, disagreements } = importReferencePlanFor(text, meta, config, file);
  for (const d of disagreements) console.error(`warning: ${file}: ${d.message}`);
  if (disagreements.length > 0) {
    const groups = config.numLayers * config.numKvHeads;
    console.error(
      `warning: ${file}: ${disagreements.length} of ${groups} kv heads had query heads with ` +
        `different rules; each took the widest`,
    );
  }
  plan.density = cli.string("density") === undefined
    ? meanDensity(plan, servingLength)
    : cli.density("density");
  plan.provenance = {
    imported_from: file,
    imported_at: new Date().toISOString(),
    reference_heads_per_layer: (JSON.parse(text) as { alphas: number[][] }).alphas[0]!.length,
    kv_heads_with_disagreeing_query_heads: disagreements.length,
  };
  const out = cli.string("out") ?? outName(file, ".plan.json");
  await writePlan(out, plan);
  console.log(out);
  return 0;
}

/** Mean density of a plan's kv heads at length n under its own semantics. */
function meanDensity(plan: Plan, n: number): number {
  let sum = 0, count = 0;
  plan.alphas.forEach((row, l) =>
    row.forEach((alpha, g) => {
      const rule = { alpha, beta: plan.betas[l]![g]! };
      sum += ruleDensity(rule, n, plan.sink, plan.block, plan.spans ?? "per-query");
      count++;
    })
  );
  return sum / count;
}

/** `deno task plan export PLAN [--out FILE] [--model DIR]`: a plan in the reference's layout. */
async function exportMain(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, EXPORT_OPTIONS, Infinity);
  if (!cli) return 0;
  const file = onePositional(cli, "plan export: expected one PLAN file");
  const model = cli.string("model");
  const plan = await readPlan(file);
  let dir: string;
  try {
    dir = await resolveModelDir(
      model ?? plan.model,
      model ? "--model" : `${file}: model`,
    );
  } catch (e) {
    if (!(e instanceof InputError) || model) throw e;
    throw new InputError(`${e.message}; pass --model DIR for the model's head counts`);
  }
  const config = await modelConfig(dir);
  const where = model ? `--model ${model}` : `the plan's model ${plan.model}`;
  if (plan.alphas.length !== config.numLayers) {
    throw new InputError(
      `${file}: alphas: ${plan.alphas.length} layers, but ${where} has ${config.numLayers}`,
    );
  }
  const heads = plan.alphas[0]!.length;
  if (heads !== config.numKvHeads) {
    throw new InputError(
      `${file}: alphas[0]: ${heads} heads, but ${where} has ${config.numKvHeads} kv heads ` +
        `(a plan has one rule per kv head)`,
    );
  }
  if ((plan.spans ?? "per-query") !== "reference") {
    console.error(
      `warning: ${file}: the plan was made for per-query spans; the reference runtime sizes ` +
        `each head's cache its own way (runtime/spans.ts), so it will not keep the same keys`,
    );
  }
  if (plan.sink !== 64 || plan.block !== 64) {
    console.error(
      `warning: ${file}: sink ${plan.sink} and block ${plan.block}; the reference runtime uses 64 ` +
        `for both`,
    );
  }
  const out = cli.string("out") ?? outName(file, ".reference.json");
  await writeFileAtomic(out, formatReferencePlan(exportReferencePlan(plan, config.numHeads)));
  console.log(out);
  return 0;
}

if (import.meta.main) await runCli(main);
