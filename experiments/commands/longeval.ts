/**
 * `deno task longeval`: LongEval lines retrieval accuracy of a model on a LongChat JSONL file,
 * overall and per position decile of the asked line.
 *
 * ```
 * deno task longeval --model moa-tiny --cases data/longeval/testdata/longchat_sample.jsonl --json
 * ```
 *
 * Progress and notices go to stderr; stdout holds the result only (one JSON object with
 * `--json`). Exit codes: 0 ok, 1 failure, 2 bad input.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError, runCli } from "../../runtime/errors.ts";
import { type LongEvalCase, readLongEvalJsonl } from "../../data/longeval/longeval.ts";
import { runLongEval } from "../../data/benchmarks.ts";
import { type Plan, readPlan } from "../../solver/plan.ts";
import {
  cacheOf,
  hasGpuCache,
  type Method,
  METHODS,
  type MethodSpec,
} from "../../runtime/methods.ts";
import { sessionDecoder } from "../../runtime/decoder.ts";
import { createProgress } from "../progress.ts";
import {
  type Backend,
  BACKENDS,
  checkModel,
  openSession,
  resolveModelDir,
} from "../../runtime/session.ts";
import { checkLength, checkMemory, contextLength } from "../limits.ts";

/** One line pointing at the full help, appended to usage errors. */
const USAGE_HINT = "usage: deno task longeval --model DIR --cases FILE.jsonl [options]; " +
  "see --help";

/** The text `--help` prints. */
export const HELP = `moa LongEval lines: retrieval accuracy of a model

Usage:
  deno task longeval --model DIR --cases FILE.jsonl [options]

Required:
  --model DIR        an embedded model name (data/models/<name>) or a Hugging Face model folder
  --cases FILE       LongEval cases in the LongChat JSONL format (prompt, expected_number, ...)

Options:
  --method M         ${METHODS.join(" | ")} (default dense)
  --plan FILE        a MoA plan (JSON); needed by moa and its variants
  --density D        KV-cache density in (0, 1]; sparse methods only (dense always uses 1)
  --limit N          evaluate only the first N cases
  --backend B        ${BACKENDS.join(" | ")} (default auto); webgpu runs dense, moa and
                     streaming on the GPU (h2o has no GPU cache: cpu or auto)
  --json             print one JSON object: {model, method, density, backend, n, accuracy,
                     by_decile: [{decile, accuracy, n}], prompt_tokens_mean, seconds}
  -h, --help         show this help

Answers are decoded greedily; a case is correct when the last integer in the answer equals the
asked line's value. Progress goes to stderr. Exit codes: 0 ok, 1 failure, 2 bad input.
`;

/** The validated command line. */
export interface LongEvalArgs {
  /** `--model` as given */
  model: string;
  /** `--cases` */
  cases: string;
  method: Method;
  /** `--plan`, or null */
  plan: string | null;
  /** `--density`, or null */
  density: number | null;
  /** `--limit`, or null for every case */
  limit: number | null;
  json: boolean;
  backend: Backend;
  help: boolean;
}

/** What `--json` prints. */
export interface LongEvalReport {
  /** `--model` as given */
  model: string;
  method: Method;
  /** the KV-cache density the method ran at (1 for dense) */
  density: number;
  /** where the answers were generated */
  backend: "cpu" | "webgpu";
  /** number of cases evaluated */
  n: number;
  /** fraction of cases answered correctly */
  accuracy: number;
  /** per position decile of the asked line; cases whose decile is unknown are left out */
  by_decile: { decile: number; accuracy: number; n: number }[];
  /** mean prompt length in the model's tokens (BOS included) */
  prompt_tokens_mean: number;
  /** wall-clock seconds of the evaluation (model loading excluded) */
  seconds: number;
}

/** Turns a `node:util` parseArgs error into an InputError with the usage hint. */
function parseError(e: unknown): unknown {
  if (
    e instanceof Error && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS")
  ) {
    return new InputError(`${e.message}; ${USAGE_HINT}`);
  }
  return e;
}

/** `node:util` parseArgs over this command's options. */
function parseRaw(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: false,
    strict: true,
    options: {
      model: { type: "string" },
      cases: { type: "string" },
      method: { type: "string", default: "dense" },
      plan: { type: "string" },
      density: { type: "string" },
      limit: { type: "string" },
      json: { type: "boolean", default: false },
      backend: { type: "string", default: "auto" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
}

/**
 * Parses and validates the command line (nothing is read from disk).
 *
 * @param args the arguments after the script name
 * @returns the validated arguments
 * @throws {InputError} on an unknown option, a missing `--model` or `--cases`, a bad value or
 *   an unavailable method (whether `--plan`/`--density` suit the method is checked by
 *   {@link evaluate}, after the plan file is read)
 * @example
 * ```ts
 * import { parseLongEvalArgs } from "./longeval.ts";
 * const a = parseLongEvalArgs(["--model", "moa-tiny", "--cases", "x.jsonl", "--limit", "5"]);
 * console.assert(a.method === "dense" && a.limit === 5);
 * ```
 */
export function parseLongEvalArgs(args: string[]): LongEvalArgs {
  let parsed: ReturnType<typeof parseRaw>;
  try {
    parsed = parseRaw(args);
  } catch (e) {
    throw parseError(e);
  }
  const { values } = parsed;
  const help = values.help;
  const base = {
    model: values.model ?? "",
    cases: values.cases ?? "",
    method: "dense" as Method,
    plan: null,
    density: null,
    limit: null,
    json: values.json,
    backend: "auto" as Backend,
    help,
  };
  if (help) return base;
  if (values.model === undefined || values.model === "") {
    throw new InputError(`missing --model; ${USAGE_HINT}`);
  }
  if (values.cases === undefined || values.cases === "") {
    throw new InputError(`missing --cases; ${USAGE_HINT}`);
  }

  let limit: number | null = null;
  if (values.limit !== undefined) {
    const v = /^\s*\d+\s*$/.test(values.limit) ? Number(values.limit) : NaN;
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new InputError(`--limit: expected a positive integer, got '${values.limit}'`);
    }
    limit = v;
  }

  const method = values.method as Method;
  if (!(METHODS as readonly string[]).includes(method)) {
    throw new InputError(
      `--method: expected one of ${METHODS.join(", ")}, got '${values.method}'`,
    );
  }

  const backend = values.backend as Backend;
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    throw new InputError(
      `--backend: expected one of ${BACKENDS.join(", ")}, got '${values.backend}'`,
    );
  }

  let density: number | null = null;
  if (values.density !== undefined) {
    const text = values.density.trim();
    const v = text === "" ? NaN : Number(text);
    if (!Number.isFinite(v) || v <= 0 || v > 1) {
      throw new InputError(`--density: expected a number in (0, 1], got '${values.density}'`);
    }
    density = v;
  }
  const plan = values.plan ?? null;
  if (plan === "") throw new InputError("--plan: expected a file path, got ''");
  return {
    ...base,
    model: values.model,
    cases: values.cases,
    method,
    plan,
    density,
    limit,
    backend,
  };
}

/** Reads a MoA plan file (solver/plan.ts), naming the option in errors. */
async function readPlanOption(path: string): Promise<Plan> {
  try {
    return await readPlan(path);
  } catch (e) {
    if (e instanceof InputError) throw new InputError(`--plan: ${e.message}`);
    throw e;
  }
}

/** Sink tokens of StreamingLLM in this command (the experiment files' `profile.sink` default). */
const DEFAULT_SINK = 32;

/**
 * Rejects `--density` and `--plan` where the method has no use for them, and `--backend webgpu`
 * for a method without a GPU cache.
 * @throws {InputError} when either is given with the dense method, a CPU-only method (h2o,
 *   snapkv, adakv) is asked on webgpu, or duo is asked (it runs from experiment files)
 */
function checkMethodOptions(a: LongEvalArgs): void {
  const cache = cacheOf(a.method);
  if (a.backend === "webgpu" && !hasGpuCache(a.method)) {
    throw new InputError(
      `--backend webgpu: ${a.method} has no GPU cache and runs on the CPU only; use --backend cpu or auto`,
    );
  }
  if (cache === "duo") {
    throw new InputError(
      "--method duo: DuoAttention's rules depend on the density and the prompt length; run it " +
        "from an experiment file (deno task experiment), which trains or imports its gates",
    );
  }
  if (cache === "moa" && a.plan === null) {
    throw new InputError(
      `--plan: required with --method ${a.method} (make one with deno task plan)`,
    );
  }
  if (cache !== "dense" && cache !== "moa" && a.density === null) {
    throw new InputError(`--density: required with --method ${a.method}`);
  }
  if (cache !== "dense") return;
  if (a.density !== null) {
    throw new InputError("--density applies to sparse methods; dense always uses density 1");
  }
  if (a.plan !== null) {
    throw new InputError("--plan applies to sparse methods; dense keeps the whole KV cache");
  }
}

/**
 * The method with its settings, as `sessionDecoder` (runtime/decoder.ts) takes it.
 * @throws {InputError} when the method's density or plan is missing, or `--density` differs
 *   from the plan's
 */
function methodSpec(a: LongEvalArgs, plan: Plan | null): MethodSpec {
  const cache = cacheOf(a.method);
  switch (cache) {
    case "dense":
      return { method: a.method, density: 1, sink: 0 };
    case "streaming":
    case "h2o":
    case "snapkv":
    case "adakv":
    case "duo": {
      if (a.density === null) {
        throw new InputError(`--density: required with --method ${a.method}`);
      }
      return {
        method: a.method,
        density: a.density,
        sink: cache === "streaming" ? DEFAULT_SINK : 0,
      };
    }
    case "moa": {
      if (plan === null) {
        throw new InputError(
          `--plan: required with --method ${a.method} (make one with deno task plan)`,
        );
      }
      if (a.density !== null && a.density !== plan.density) {
        throw new InputError(
          `--density: ${a.density} differs from the plan's density ${plan.density}; leave it out`,
        );
      }
      return { method: a.method, density: plan.density, sink: plan.sink, plan };
    }
  }
}

/**
 * Checks the prompts against the model before its weights are loaded: a prompt far past the
 * model's context (or whose KV cache cannot fit in memory) is refused; prompts past the context
 * run, with one warning (a user may be measuring extrapolation).
 * @returns warning lines to print
 * @throws {InputError} naming the case, its length and the limit, or a broken model folder
 */
async function checkPromptLengths(
  dir: string,
  cases: LongEvalCase[],
  file: string,
): Promise<string[]> {
  const { config, tokenizer } = await checkModel(dir);
  const bos = config.bosTokenId === null ? 0 : 1;
  const lengths = cases.map((c) => tokenizer.encode(c.prompt).length + bos);
  const longest = lengths.indexOf(Math.max(...lengths));
  const what = `--cases: ${file}: case ${cases[longest]!.id} has a prompt of ${
    lengths[longest]
  } tokens, which`;
  const warning = checkLength(config, lengths[longest]!, what);
  checkMemory(config, lengths[longest]!, what);
  if (warning === null) return [];
  const { tokens, source } = contextLength(config);
  const over = cases.filter((_, i) => lengths[i]! > tokens);
  return [
    `warning: ${over.length} of ${cases.length} prompts are longer than the model's context of ` +
    `${tokens} (${source}; first: ${over[0]!.id}): positions past it were not trained, so ` +
    `expect degraded results`,
  ];
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** one-line notices and progress @default stderr */
  log?: (line: string) => void;
}

/**
 * Loads the model and the cases and evaluates them.
 *
 * @param a validated arguments (see {@link parseLongEvalArgs})
 * @param opts where notices go
 * @returns the report `--json` prints
 * @throws {InputError} when the plan file, the model folder or the cases file is unusable, or
 *   `--plan`/`--density` are given with the dense method
 * @example
 * ```ts ignore
 * import { evaluate, parseLongEvalArgs } from "./longeval.ts";
 * const args = ["--model", "moa-tiny", "--cases", "data/longeval/testdata/longchat_sample.jsonl"];
 * const report = await evaluate(parseLongEvalArgs(args));
 * ```
 */
export async function evaluate(
  a: LongEvalArgs,
  opts: EvaluateOptions = {},
): Promise<LongEvalReport> {
  const log = opts.log ?? ((l: string) => console.error(l));
  checkMethodOptions(a);
  const plan = a.plan === null ? null : await readPlanOption(a.plan);
  const dir = await resolveModelDir(a.model, "--model");
  let cases: LongEvalCase[] = await readLongEvalJsonl(a.cases);
  if (a.limit !== null) cases = cases.slice(0, a.limit);
  for (const w of await checkPromptLengths(dir, cases, a.cases)) log(w);
  const spec = methodSpec(a, plan);
  const s = await openSession(dir, a.backend, log);
  const method = sessionDecoder(s, spec);
  if (method.backend !== s.backend) {
    log(`notice: ${a.method} has no GPU cache; generating on the CPU`);
  }

  const label = `longeval ${cases.length} cases, ${a.method} on ${method.backend}`;
  const progress = createProgress(1, { write: log });
  progress.start(label);
  const t0 = performance.now();
  let metrics;
  try {
    metrics = await runLongEval(s, cases, method, (d, t) => progress.update(d, t));
    const seconds = (performance.now() - t0) / 1000;
    const acc = metrics.find((m) => m.metric === "accuracy");
    progress.finish(`accuracy=${acc ? +acc.value.toPrecision(4) : "?"}`);
    const byDecile: LongEvalReport["by_decile"] = [];
    let accuracy = 0, n = 0, promptMean = 0;
    for (const m of metrics) {
      const d = /^accuracy_decile_(\d+)$/.exec(m.metric);
      if (d) byDecile.push({ decile: Number(d[1]), accuracy: m.value, n: m.n });
      else if (m.metric === "accuracy") [accuracy, n] = [m.value, m.n];
      else if (m.metric === "prompt_tokens") promptMean = m.value;
    }
    return {
      model: a.model,
      method: a.method,
      density: spec.density,
      backend: method.backend,
      n,
      accuracy,
      by_decile: byDecile,
      prompt_tokens_mean: promptMean,
      seconds: Math.round(seconds * 1000) / 1000,
    };
  } finally {
    progress.stop();
  }
}

/**
 * The human-readable summary printed without `--json`.
 *
 * @param r a report
 * @returns a few lines of text, the last one without a newline
 * @example
 * ```ts
 * import { formatSummary } from "./longeval.ts";
 * const text = formatSummary({
 *   model: "m", method: "dense", density: 1, backend: "cpu", n: 2, accuracy: 0.5,
 *   by_decile: [{ decile: 0, accuracy: 0.5, n: 2 }], prompt_tokens_mean: 700, seconds: 1.5,
 * });
 * console.assert(text.includes("accuracy 0.5000 (1 of 2 cases)"));
 * ```
 */
export function formatSummary(r: LongEvalReport): string {
  const correct = Math.round(r.accuracy * r.n);
  const lines = [
    `LongEval lines: ${r.model}, ${r.method} (density ${r.density}) on ${r.backend}`,
    `accuracy ${r.accuracy.toFixed(4)} (${correct} of ${r.n} cases); ` +
    `mean prompt ${r.prompt_tokens_mean.toFixed(1)} tokens; ${r.seconds.toFixed(1)} s`,
  ];
  if (r.by_decile.length > 0) {
    lines.push("decile  accuracy  cases");
    for (const d of r.by_decile) {
      lines.push(
        `${String(d.decile).padStart(6)}  ${d.accuracy.toFixed(4).padStart(8)}  ${
          String(d.n).padStart(5)
        }`,
      );
    }
  }
  return lines.join("\n");
}

/**
 * Runs the command line.
 *
 * @param args the arguments after the script name
 * @returns the exit code (errors are thrown; see `reportError`)
 */
export async function main(args: string[]): Promise<number> {
  const a = parseLongEvalArgs(args);
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  const report = await evaluate(a);
  console.log(a.json ? JSON.stringify(report) : formatSummary(report));
  return 0;
}

if (import.meta.main) await runCli(main);
