/**
 * Declarative experiment files: their schema, validation with precise errors, and expansion into
 * cells (method × density × length × benchmark).
 *
 * An experiment file is YAML (`.yaml`, `.yml`) or JSON (`.json`). Both are read with the `yaml`
 * package so that every error, syntax errors included, names `file:line:column`. Validation errors
 * read `<file>:<line>:<col>: <field path>: expected <what>, got <value>`, e.g.
 * `experiments/x.yaml:4:19: densities[1]: expected a number in (0, 1], got 1.5`.
 *
 * The same format is described for editors by `experiment.schema.json` beside this file; a test
 * keeps the two in agreement.
 *
 * @module
 */

import { dirname, extname, resolve } from "node:path";
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type ParsedNode,
  parseDocument,
  type YAMLMap,
} from "yaml";
import { InputError } from "../runtime/errors.ts";
import { SPAN_SEMANTICS, type SpanSemantics } from "../runtime/spans.ts";
import { type Backend, BACKENDS } from "../runtime/session.ts";
import { type Method, METHODS } from "../runtime/methods.ts";
import { RULER_TASKS, type RulerTask } from "../data/ruler/ruler.ts";

/** The benchmarks, in the order cells are expanded. */
export const BENCHMARKS = ["longeval", "ruler", "perplexity", "throughput"] as const;
/** A benchmark name. */
export type BenchmarkName = (typeof BENCHMARKS)[number];

/** Profiling settings, all defaults filled. */
export interface ProfileSettings {
  /** Prompt lengths (tokens) to profile at; defaults to the experiment's `lengths`. */
  lengths: number[];
  /** Calibration samples per length. @default 8 */
  samples: number;
  /** Block size (tokens) of the attention masks. @default 32 */
  block: number;
  /** Attention-sink tokens every sparse head keeps. @default 32 */
  sink: number;
  /**
   * How a rule's loss is estimated from E = ∂L/∂A with renormalisation: `abs` sums |E| over what
   * it drops (the reference's); `signed` sums E itself, the first-order loss change. @default "abs"
   */
  influence: Influence;
}

/** Influence estimates of the profiler (see {@link ProfileSettings.influence}). */
export const INFLUENCES = ["abs", "signed"] as const;
/** An influence estimate. */
export type Influence = (typeof INFLUENCES)[number];

/**
 * LongEval settings: `cases` generated cases per length, or cases read from a LongChat-format
 * JSONL `file` (an absolute path), at most `limit` of them when `limit` is not null.
 */
export type LongEvalSettings = { cases: number } | { file: string; limit: number | null };

/** RULER settings (data/ruler/ruler.ts). */
export interface RulerSettings {
  /** The tasks, in RULER's order as listed. @default all of them */
  tasks: RulerTask[];
  /** Cases per length, spread over the tasks in turn. @default 2 per task */
  cases: number;
}

/**
 * DuoAttention's gates (DESIGN.md §4.6): read from a published `full_attention_heads.tsv`, or
 * trained here (solver/duo.ts) with the other settings.
 */
export interface DuoSettings {
  /** A `full_attention_heads.tsv` or its folder (absolute), or null to train the gates. */
  pattern: string | null;
  /** Training steps, one passkey sample each. @default 100 */
  steps: number;
  /** Peak learning rate. @default 0.02 */
  lr: number;
  /** Weight of the L1 pull toward streaming. @default 0.05 */
  reg: number;
  /** Tokens per training sample. @default 1024 */
  length: number;
  /** Recent tokens of a streaming head in training (its sink is `profile.sink`). @default 2 · sink */
  recent: number;
}

/** Perplexity settings. */
export interface PerplexitySettings {
  /** Tokens of held-out text per length. @default 4096 */
  tokens: number;
}

/** Throughput settings. */
export interface ThroughputSettings {
  /** Tokens to decode per measurement. @default 32 */
  decode: number;
  /** Batch size. @default 1 */
  batch: number;
}

/** The benchmarks an experiment runs; at least one is present. */
export interface BenchmarkSettings {
  /** Retrieval accuracy on LongEval lines (DESIGN.md §5). */
  longeval?: LongEvalSettings;
  /** RULER's synthetic tasks (DESIGN.md §5.3). */
  ruler?: RulerSettings;
  /** Perplexity on held-out Brown-corpus text. */
  perplexity?: PerplexitySettings;
  /** Prefill and decode tokens/s and the KV bytes held. */
  throughput?: ThroughputSettings;
}

/** A fully resolved experiment: every default filled, every path absolute. */
export interface Experiment {
  /** Matches `/^[a-z0-9][a-z0-9_.-]*$/`. */
  name: string;
  /** An embedded model name (no slash, kept as written) or an absolute path to a HF folder. */
  model: string;
  /** Non-empty, unique. */
  methods: Method[];
  /** Unique densities in (0, 1]; `[1]` when only `dense` is listed and none were given. */
  densities: number[];
  /** Unique positive prompt lengths in tokens. */
  lengths: number[];
  /** How MoA plans are profiled (sparse methods that need a plan). */
  profile: ProfileSettings;
  /** The benchmarks every cell runs one of. */
  benchmarks: BenchmarkSettings;
  /** Seed of generated cases, calibration samples and text windows. @default 0 */
  seed: number;
  /** Where the model runs. @default "auto" */
  backend: Backend;
  /**
   * How the windowed methods' caches (moa and its variants, streaming) turn rules into windows,
   * and which band the profiler charges: `per-query` (this project's) or `reference` (the MoA
   * reference runtime's; needs `profile.sink` a multiple of `profile.block`). See
   * `runtime/spans.ts`. @default "per-query"
   */
  spans: SpanSemantics;
  /** DuoAttention's gates: present when `duo` is a method or the file sets it. */
  duo?: DuoSettings;
}

/** One unit of work: one method at one density and one prompt length, on one benchmark. */
export interface Cell {
  /** Stable, readable and unique within an experiment, e.g. `moa-d0.5-n2048-perplexity`. */
  id: string;
  /** The attention method. */
  method: Method;
  /** Always 1 for `dense`. */
  density: number;
  /** Prompt length in tokens. */
  length: number;
  /** The benchmark the cell runs. */
  benchmark: BenchmarkName;
}

/** What an experiment `name` must match (it becomes part of folder names). */
export const NAME_PATTERN: RegExp = /^[a-z0-9][a-z0-9_.-]*$/;

// ---------------------------------------------------------------------------------------------
// Reading YAML nodes

/** A value to check: its node (null when nothing was written) and where to point at it. */
interface Value {
  node: ParsedNode | null;
  offset: number;
}

/** What a file is being read against: its name (for messages), its document and line table. */
class Source {
  constructor(
    readonly file: string,
    readonly doc: Document.Parsed,
    readonly lines: LineCounter,
    /** Absolute folder of the file, for resolving relative paths in it. */
    readonly baseDir: string,
  ) {}

  /** Throws an InputError at `offset`: `file:line:col: path: text`. */
  fail(offset: number, path: string, text: string): never {
    throw new InputError(
      `${here(this.file, this.lines, offset)}: ${path ? `${path}: ` : ""}${text}`,
    );
  }

  /** Throws `path: expected <what>, got <value>` pointing at the value. */
  wrong(v: Value, path: string, expected: string): never {
    return this.fail(v.offset, path, `expected ${expected}, got ${describe(v.node)}`);
  }

  /** Wraps a node for checking: aliases are followed, empty scalars become "nothing". */
  value(node: ParsedNode | null | undefined, fallbackOffset: number): Value {
    if (!node) return { node: null, offset: fallbackOffset };
    const offset = node.range[0];
    if (isAlias(node)) {
      const target = node.resolve(this.doc) as ParsedNode | undefined;
      return { node: target ?? null, offset };
    }
    if (isScalar(node) && node.value === null && node.range[0] === node.range[1]) {
      return { node: null, offset: fallbackOffset };
    }
    return { node, offset };
  }
}

/** @returns `file:line:col` for a character offset */
function here(file: string, lines: LineCounter, offset: number): string {
  const { line, col } = lines.linePos(offset);
  return `${file}:${line}:${col}`;
}

/** @returns a short description of a node's value for an error message */
function describe(node: ParsedNode | null): string {
  if (node === null) return "nothing";
  if (isMap(node)) return node.items.length === 0 ? "an empty mapping" : "a mapping";
  if (isSeq(node)) return node.items.length === 0 ? "an empty list" : "a list";
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === "string") {
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    }
    return String(v);
  }
  return "an alias";
}

/** @returns the Levenshtein distance between two strings */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** @returns the candidate closest to `word` within edit distance 2, or null */
function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance && d < word.length) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** @returns `parent.name`, or `name` at the top level */
function join(parent: string, name: string): string {
  return parent ? `${parent}.${name}` : name;
}

// ---------------------------------------------------------------------------------------------
// Field readers

type Reader<T> = (s: Source, v: Value, path: string) => T;
type Spec = Record<string, Reader<unknown>>;
type Read<S extends Spec> = { [K in keyof S]?: ReturnType<S[K]> };

/** The result of reading a mapping: the values read, and the offset of each key. */
interface ReadMap<S extends Spec> {
  got: Read<S>;
  keyAt: Partial<Record<keyof S, number>>;
  /** Where the mapping starts (for "missing field" errors). */
  offset: number;
}

/**
 * Reads a mapping field by field in document order; unknown fields are errors.
 * When `nullable`, nothing or `null` reads as an empty mapping.
 */
function readMap<S extends Spec>(
  s: Source,
  v: Value,
  path: string,
  spec: S,
  what: string,
  nullable: boolean,
): ReadMap<S> {
  const got: Record<string, unknown> = {};
  const keyAt: Record<string, number> = {};
  const node = v.node;
  if (nullable && (node === null || (isScalar(node) && node.value === null))) {
    return { got: got as Read<S>, keyAt: keyAt as ReadMap<S>["keyAt"], offset: v.offset };
  }
  if (!isMap(node)) return s.wrong(v, path, what);
  const names = Object.keys(spec);
  for (const pair of (node as YAMLMap.Parsed).items) {
    const key = pair.key;
    if (!isScalar(key)) {
      return s.wrong({ node: key, offset: key.range[0] }, path, "a field name");
    }
    const name = String(key.value);
    const fieldPath = join(path, name);
    if (!Object.hasOwn(spec, name)) {
      const guess = closest(name, names);
      const hint = guess !== null
        ? `did you mean '${guess}'?`
        : `expected one of ${names.join(", ")}`;
      return s.fail(key.range[0], fieldPath, `unknown field '${name}', ${hint}`);
    }
    keyAt[name] = key.range[0];
    got[name] = spec[name]!(s, s.value(pair.value, key.range[0]), fieldPath);
  }
  return { got: got as Read<S>, keyAt: keyAt as ReadMap<S>["keyAt"], offset: v.offset };
}

/** @returns the value of a required field, or throws pointing at the mapping */
function need<T>(
  s: Source,
  m: { offset: number },
  path: string,
  value: T | undefined,
  what: string,
): T {
  if (value === undefined) s.fail(m.offset, path, `missing required field, expected ${what}`);
  return value;
}

function readString(
  what: string,
  ok: (x: string) => boolean = (x) => x.length > 0,
): Reader<string> {
  return (s, v, path) => {
    const n = v.node;
    if (isScalar(n) && typeof n.value === "string" && ok(n.value)) return n.value;
    return s.wrong(v, path, what);
  };
}

function readNumber(what: string, ok: (x: number) => boolean): Reader<number> {
  return (s, v, path) => {
    const n = v.node;
    if (isScalar(n) && typeof n.value === "number" && ok(n.value)) return n.value;
    return s.wrong(v, path, what);
  };
}

function readEnum<T extends string>(values: readonly T[]): Reader<T> {
  const what = `one of ${values.join(", ")}`;
  return readString(what, (x) => (values as readonly string[]).includes(x)) as Reader<T>;
}

const POSITIVE_INT = "a positive integer";
const positiveInt = readNumber(POSITIVE_INT, (x) => Number.isSafeInteger(x) && x > 0);
const nonNegativeInt = readNumber(
  "a non-negative integer",
  (x) => Number.isSafeInteger(x) && x >= 0,
);
const anyInt = readNumber("an integer", (x) => Number.isSafeInteger(x));
const DENSITY = "a number in (0, 1]";
const density = readNumber(DENSITY, (x) => x > 0 && x <= 1);

/** Reads a non-empty list whose items are all different. */
function readList<T>(what: string, item: Reader<T>): Reader<T[]> {
  return (s, v, path) => {
    const n = v.node;
    if (!isSeq(n) || n.items.length === 0) return s.wrong(v, path, `a non-empty list of ${what}`);
    const out: T[] = [];
    const firstAt = new Map<T, number>();
    n.items.forEach((raw, i) => {
      const itemValue = s.value(raw as ParsedNode | null, v.offset);
      const x = item(s, itemValue, `${path}[${i}]`);
      const j = firstAt.get(x);
      if (j !== undefined) {
        s.fail(
          itemValue.offset,
          `${path}[${i}]`,
          `expected each value once, got ${
            describe(itemValue.node)
          } again (first at ${path}[${j}])`,
        );
      }
      firstAt.set(x, i);
      out.push(x);
    });
    return out;
  };
}

const LENGTHS = "positive integers";
const lengthList = readList(LENGTHS, positiveInt);

// ---------------------------------------------------------------------------------------------
// The format: one spec per mapping. The key sets are exported (FIELD_NAMES) for the schema test.

const PROFILE = {
  lengths: lengthList,
  samples: positiveInt,
  block: positiveInt,
  sink: nonNegativeInt,
  influence: readEnum(INFLUENCES),
} satisfies Spec;

const LONGEVAL = {
  cases: positiveInt,
  file: readString("a path to a LongChat-format JSONL file"),
  limit: positiveInt,
} satisfies Spec;

const PERPLEXITY = { tokens: positiveInt } satisfies Spec;

const RULER = {
  tasks: readList("RULER tasks", readEnum(RULER_TASKS)),
  cases: positiveInt,
} satisfies Spec;

const positiveNumber = readNumber("a positive number", (x) => x > 0);

const DUO = {
  pattern: readString("a path to a full_attention_heads.tsv or its folder"),
  steps: positiveInt,
  lr: positiveNumber,
  reg: readNumber("a number ≥ 0", (x) => x >= 0),
  length: positiveInt,
  recent: positiveInt,
} satisfies Spec;

const THROUGHPUT = { decode: positiveInt, batch: positiveInt } satisfies Spec;

function readLongEval(s: Source, v: Value, path: string): LongEvalSettings {
  const m = readMap(s, v, path, LONGEVAL, "a mapping with 'cases' or 'file'", true);
  const { cases, file, limit } = m.got;
  if (cases !== undefined && file !== undefined) {
    const later = m.keyAt.cases! > m.keyAt.file! ? "cases" : "file";
    s.fail(m.keyAt[later]!, join(path, later), "expected either 'cases' or 'file', got both");
  }
  if (limit !== undefined && file === undefined) {
    s.fail(
      m.keyAt.limit!,
      join(path, "limit"),
      "expected 'limit' only together with 'file', got no 'file'",
    );
  }
  if (file !== undefined) return { file: resolve(s.baseDir, file), limit: limit ?? null };
  return { cases: cases ?? 20 };
}

const BENCHMARK_SPEC = {
  longeval: readLongEval,
  ruler: (s: Source, v: Value, path: string): RulerSettings => {
    const m = readMap(s, v, path, RULER, "a mapping of RULER settings", true);
    const tasks = m.got.tasks ?? [...RULER_TASKS];
    return { tasks, cases: m.got.cases ?? 2 * tasks.length };
  },
  perplexity: (s: Source, v: Value, path: string): PerplexitySettings => {
    const m = readMap(s, v, path, PERPLEXITY, "a mapping of perplexity settings", true);
    return { tokens: m.got.tokens ?? 4096 };
  },
  throughput: (s: Source, v: Value, path: string): ThroughputSettings => {
    const m = readMap(s, v, path, THROUGHPUT, "a mapping of throughput settings", true);
    return { decode: m.got.decode ?? 32, batch: m.got.batch ?? 1 };
  },
} satisfies Spec;

function readBenchmarks(s: Source, v: Value, path: string): BenchmarkSettings {
  const what = `a mapping with at least one of ${BENCHMARKS.join(", ")}`;
  const m = readMap(s, v, path, BENCHMARK_SPEC, what, false);
  const out: BenchmarkSettings = {};
  if (m.got.longeval !== undefined) out.longeval = m.got.longeval;
  if (m.got.ruler !== undefined) out.ruler = m.got.ruler;
  if (m.got.perplexity !== undefined) out.perplexity = m.got.perplexity;
  if (m.got.throughput !== undefined) out.throughput = m.got.throughput;
  if (Object.keys(out).length === 0) s.wrong(v, path, what);
  return out;
}

const MODEL = "a model name or a path to a Hugging Face folder";
const DENSITIES = `a non-empty list of numbers in (0, 1]`;

const EXPERIMENT = {
  $schema: readString("a path or URL of the JSON Schema"),
  name: readString(`a name matching ${NAME_PATTERN}`, (x) => NAME_PATTERN.test(x)),
  model: readString(MODEL),
  methods: readList("methods", readEnum(METHODS)),
  densities: readList(`numbers in (0, 1]`, density),
  lengths: lengthList,
  profile: (s: Source, v: Value, path: string) =>
    readMap(s, v, path, PROFILE, "a mapping of profile settings", true),
  benchmarks: readBenchmarks,
  seed: anyInt,
  backend: readEnum(BACKENDS),
  spans: readEnum(SPAN_SEMANTICS),
  duo: (s: Source, v: Value, path: string) =>
    readMap(s, v, path, DUO, "a mapping of DuoAttention settings", true),
} satisfies Spec;

/**
 * The field names the validator accepts, per mapping: `experiment` (top level), `profile`,
 * `benchmarks`, `duo`, and one entry per benchmark.
 */
export const FIELD_NAMES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  experiment: Object.keys(EXPERIMENT),
  profile: Object.keys(PROFILE),
  benchmarks: Object.keys(BENCHMARK_SPEC),
  longeval: Object.keys(LONGEVAL),
  ruler: Object.keys(RULER),
  duo: Object.keys(DUO),
  perplexity: Object.keys(PERPLEXITY),
  throughput: Object.keys(THROUGHPUT),
});

/** The top-level fields every experiment file must have (`densities` too, for sparse methods). */
export const REQUIRED_FIELDS: readonly string[] = [
  "name",
  "model",
  "methods",
  "lengths",
  "benchmarks",
];

/** Validates the document's top-level mapping and fills defaults. */
function readExperiment(s: Source): Experiment {
  const root = s.value(s.doc.contents as ParsedNode | null, 0);
  const m = readMap(s, root, "", EXPERIMENT, "a mapping of experiment fields", false);
  const g = m.got;
  const name = need(s, m, "name", g.name, `a name matching ${NAME_PATTERN}`);
  const rawModel = need(s, m, "model", g.model, MODEL);
  const methods = need(s, m, "methods", g.methods, "a non-empty list of methods");
  const sparse = methods.find((x) => x !== "dense");
  let densities = g.densities;
  if (densities === undefined) {
    if (sparse !== undefined) {
      s.fail(
        m.offset,
        "densities",
        `missing required field (methods lists "${sparse}"), expected ${DENSITIES}`,
      );
    }
    densities = [1];
  }
  const lengths = need(s, m, "lengths", g.lengths, `a non-empty list of ${LENGTHS}`);
  const benchmarks = need(s, m, "benchmarks", g.benchmarks, "a mapping of benchmarks");
  const p = g.profile?.got ?? {};
  const spans = g.spans ?? "per-query";
  const [sink, block] = [p.sink ?? 32, p.block ?? 32];
  if (spans === "reference" && sink % block !== 0) {
    s.fail(
      m.keyAt.spans!,
      "spans",
      `expected profile.sink (${sink}) to be a multiple of profile.block (${block}) for the ` +
        `reference span semantics, which keeps whole sink blocks`,
    );
  }
  const model = rawModel.includes("/") || rawModel.startsWith(".")
    ? resolve(s.baseDir, rawModel)
    : rawModel;
  const d = g.duo?.got;
  const duo: DuoSettings | undefined = d !== undefined || methods.includes("duo")
    ? {
      pattern: d?.pattern === undefined ? null : resolve(s.baseDir, d.pattern),
      steps: d?.steps ?? 100,
      lr: d?.lr ?? 0.02,
      reg: d?.reg ?? 0.05,
      length: d?.length ?? 1024,
      recent: d?.recent ?? 2 * sink,
    }
    : undefined;
  return {
    name,
    model,
    methods,
    densities,
    lengths,
    profile: {
      lengths: p.lengths ?? [...lengths],
      samples: p.samples ?? 8,
      block,
      sink,
      influence: p.influence ?? "abs",
    },
    benchmarks,
    seed: g.seed ?? 0,
    backend: g.backend ?? "auto",
    spans,
    ...(duo ? { duo } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Strict JSON syntax (YAML accepts more: comments, single quotes, trailing commas)

/** @returns the first JSON syntax error in `text` as an offset and a message, or null */
function jsonSyntaxError(text: string): { offset: number; message: string } | null {
  let i = 0;
  class Stop extends Error {}
  const shown = () => {
    const ch = text[i];
    if (ch === undefined) return "end of file";
    if (ch === "'") return `"'"`;
    return ch < " " ? `'${JSON.stringify(ch).slice(1, -1)}'` : `'${ch}'`;
  };
  const fail = (what: string): never => {
    throw new Stop(`expected ${what}, got ${shown()}`);
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const string = () => {
    i++;
    for (;;) {
      const ch = text[i];
      if (ch === undefined) fail("a closing quote");
      if (ch === '"') return void i++;
      if (ch === "\\") {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) {
            i++;
            fail("4 hex digits after '\\u'");
          }
          i += 5;
        } else if (text[i] !== undefined && '"\\/bfnrt'.includes(text[i]!)) i++;
        else fail("an escape sequence");
      } else if (ch! < " ") fail("an escaped control character");
      else i++;
    }
  };
  const value = (): void => {
    space();
    const ch = text[i];
    if (ch === "{") {
      i++;
      space();
      if (text[i] === "}") return void i++;
      for (;;) {
        space();
        if (text[i] !== '"') fail("a double-quoted field name");
        string();
        space();
        if (text[i] !== ":") fail("':'");
        i++;
        value();
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return void i++;
        else fail("',' or '}'");
      }
    } else if (ch === "[") {
      i++;
      space();
      if (text[i] === "]") return void i++;
      for (;;) {
        value();
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return void i++;
        else fail("',' or ']'");
      }
    } else if (ch === '"') string();
    else {
      const re = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null/y;
      re.lastIndex = i;
      const match = re.exec(text);
      if (match === null) fail("a JSON value");
      i += match![0].length;
    }
  };
  try {
    value();
    space();
    if (i < text.length) fail("end of file");
    return null;
  } catch (e) {
    if (e instanceof Stop) return { offset: i, message: e.message };
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

/** @returns "yaml" or "json" from a file name, or throws an InputError */
function formatOf(file: string): "yaml" | "json" {
  const ext = extname(file).toLowerCase();
  if (ext === ".yaml" || ext === ".yml") return "yaml";
  if (ext === ".json") return "json";
  throw new InputError(
    `${file}: expected an experiment file ending in .yaml, .yml or .json, got ${
      ext ? `'${ext}'` : "no extension"
    }`,
  );
}

/**
 * Parses and validates an experiment file's text, filling defaults and resolving relative paths
 * against the file's folder.
 *
 * @param text the file's contents (YAML or JSON)
 * @param file the file's path: its extension picks the format (`.yaml`/`.yml` or `.json`), it
 *   prefixes every error message, and its folder anchors relative paths
 * @returns the fully resolved experiment
 * @throws {InputError} on a syntax error or an invalid field, as `file:line:col: path: message`
 *
 * @example
 * ```ts
 * import { parseExperiment } from "./schema.ts";
 * const exp = parseExperiment(
 *   "name: demo\nmodel: moa-tiny\nmethods: [dense]\nlengths: [256]\nbenchmarks: {perplexity: {}}\n",
 *   "demo.yaml",
 * );
 * if (exp.profile.samples !== 8 || exp.benchmarks.perplexity?.tokens !== 4096) throw new Error();
 * ```
 */
export function parseExperiment(text: string, file: string): Experiment {
  const format = formatOf(file);
  const lines = new LineCounter();
  if (format === "json") {
    const bad = jsonSyntaxError(text);
    if (bad !== null) {
      let line = 1;
      let lineStart = 0;
      for (let k = 0; k < bad.offset; k++) {
        if (text[k] === "\n") {
          line++;
          lineStart = k + 1;
        }
      }
      throw new InputError(
        `${file}:${line}:${bad.offset - lineStart + 1}: invalid JSON: ${bad.message}`,
      );
    }
  }
  const doc = parseDocument(text, {
    lineCounter: lines,
    schema: format === "json" ? "json" : "core",
    prettyErrors: false,
    uniqueKeys: true,
  });
  const err = doc.errors[0];
  if (err !== undefined) {
    const what = err.code === "DUPLICATE_KEY"
      ? "duplicate field name"
      : err.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    const label = format === "json" ? "invalid JSON" : "invalid YAML";
    throw new InputError(`${here(file, lines, err.pos[0])}: ${label}: ${what}`);
  }
  const source = new Source(file, doc, lines, dirname(resolve(file)));
  return readExperiment(source);
}

/**
 * Reads, parses and validates an experiment file.
 *
 * @param path the file (`.yaml`, `.yml` or `.json`)
 * @returns the fully resolved experiment
 * @throws {InputError} when the file is missing or unreadable, or invalid (see parseExperiment)
 *
 * @example
 * ```ts
 * import { loadExperiment } from "./schema.ts";
 * const exp = await loadExperiment(new URL("./testdata/minimal.yaml", import.meta.url).pathname);
 * if (exp.name !== "minimal") throw new Error();
 * ```
 */
export async function loadExperiment(path: string): Promise<Experiment> {
  formatOf(path);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(`${path}: cannot read experiment file: no such file`);
    }
    if (e instanceof Error) {
      throw new InputError(`${path}: cannot read experiment file: ${e.message}`);
    }
    throw e;
  }
  return parseExperiment(text, path);
}

/**
 * The id of a cell: `<method>-d<density>-n<length>-<benchmark>`.
 *
 * @param method the attention method
 * @param density the density (1 for dense)
 * @param length the prompt length in tokens
 * @param benchmark the benchmark
 * @returns e.g. `moa-d0.5-n2048-perplexity`
 *
 * @example
 * ```ts
 * import { cellId } from "./schema.ts";
 * if (cellId("dense", 1, 1024, "longeval") !== "dense-d1-n1024-longeval") throw new Error();
 * ```
 */
export function cellId(
  method: Method,
  density: number,
  length: number,
  benchmark: BenchmarkName,
): string {
  return `${method}-d${density}-n${length}-${benchmark}`;
}

/**
 * Expands an experiment into cells: the product method × density × length × benchmark, nested in
 * that order (methods, densities and lengths as listed, benchmarks as in `BENCHMARKS`). `dense`
 * runs once per length and benchmark, at density 1, whatever `densities` lists.
 *
 * @param exp a resolved experiment
 * @returns the cells, ids unique
 * @throws {RangeError} when two cells would share an id (duplicate methods, densities or lengths
 *   in a hand-built experiment)
 *
 * @example
 * ```ts
 * import { expandCells, parseExperiment } from "./schema.ts";
 * const exp = parseExperiment(
 *   "name: d\nmodel: m\nmethods: [dense, moa]\ndensities: [0.5]\nlengths: [64]\nbenchmarks: {perplexity: {}}",
 *   "d.yaml",
 * );
 * const ids = expandCells(exp).map((c) => c.id);
 * if (ids.join() !== "dense-d1-n64-perplexity,moa-d0.5-n64-perplexity") throw new Error();
 * ```
 */
export function expandCells(exp: Experiment): Cell[] {
  const benchmarks = BENCHMARKS.filter((b) => exp.benchmarks[b] !== undefined);
  const cells: Cell[] = [];
  const seen = new Set<string>();
  for (const method of exp.methods) {
    for (const density of method === "dense" ? [1] : exp.densities) {
      for (const length of exp.lengths) {
        for (const benchmark of benchmarks) {
          const id = cellId(method, density, length, benchmark);
          if (seen.has(id)) throw new RangeError(`expandCells: duplicate cell '${id}'`);
          seen.add(id);
          cells.push({ id, method, density, length, benchmark });
        }
      }
    }
  }
  return cells;
}
