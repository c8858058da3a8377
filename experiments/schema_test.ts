import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { InputError } from "../runtime/errors.ts";
import { BACKENDS } from "../runtime/session.ts";
import { METHODS } from "../runtime/methods.ts";
import {
  BENCHMARKS,
  type Cell,
  expandCells,
  type Experiment,
  FIELD_NAMES,
  loadExperiment,
  NAME_PATTERN,
  parseExperiment,
  REQUIRED_FIELDS,
} from "./schema.ts";

const testdata = (name: string) => new URL(`./testdata/${name}`, import.meta.url).pathname;

/** The valid base experiment most error cases alter one line of (line numbers as in the file). */
const BASE = [
  "name: t", // 1
  "model: moa-tiny", // 2
  "methods: [dense, moa]", // 3
  "densities: [0.5]", // 4
  "lengths: [128]", // 5
  "benchmarks: {perplexity: {}}", // 6
];

/** @returns BASE with line `n` (1-based) replaced by `lines` (none to delete it) */
function edit(n: number, ...lines: string[]): string {
  return [...BASE.slice(0, n - 1), ...lines, ...BASE.slice(n)].join("\n") + "\n";
}

/** @returns BASE with `lines` appended */
function append(...lines: string[]): string {
  return [...BASE, ...lines].join("\n") + "\n";
}

/** @returns the InputError message parseExperiment throws, failing when it does not throw one */
function errorOf(text: string, file: string): string {
  try {
    parseExperiment(text, file);
  } catch (e) {
    assert.ok(e instanceof InputError, `expected an InputError, got ${e}`);
    return e.message;
  }
  assert.fail(`expected ${file} to be rejected:\n${text}`);
}

interface Valid {
  name: string;
  file: string;
  text: string;
  check: (e: Experiment) => void;
}

/** Valid files, each with a check of what it must resolve to. */
const VALID: Valid[] = [
  {
    name: "ruler with every task by default, and duo's gate settings filled when duo runs",
    file: "exps/t.yaml",
    text: edit(3, "methods: [dense, duo, snapkv, adakv]", "profile: {sink: 8}"),
    check: (e) => {
      assert.deepEqual(e.methods, ["dense", "duo", "snapkv", "adakv"]);
      assert.deepEqual(e.duo, {
        pattern: null,
        steps: 100,
        lr: 0.02,
        reg: 0.05,
        length: 1024,
        recent: 16,
      });
    },
  },
  {
    name: "ruler tasks and cases as written; a duo pattern resolved against the file's folder",
    file: "exps/t.yaml",
    text: edit(6, "benchmarks: {ruler: {tasks: [vt, niah_single_1], cases: 6}}") +
      "duo: {pattern: pats/full_attention_heads.tsv, steps: 3}\n",
    check: (e) => {
      assert.deepEqual(e.benchmarks.ruler, { tasks: ["vt", "niah_single_1"], cases: 6 });
      assert.deepEqual(expandCells(e).map((c) => c.benchmark), ["ruler", "ruler"]);
      assert.equal(e.duo!.pattern, `${Deno.cwd()}/exps/pats/full_attention_heads.tsv`);
      assert.equal(e.duo!.steps, 3);
    },
  },
  {
    name: "an empty ruler mapping takes every task, two cases each",
    file: "t.yaml",
    text: edit(6, "benchmarks: {ruler: null}"),
    check: (e) => {
      assert.equal(e.benchmarks.ruler!.tasks.length, 11);
      assert.equal(e.benchmarks.ruler!.cases, 22);
      assert.equal(e.duo, undefined, "no duo settings without duo");
    },
  },
  {
    name: "a minimal YAML file takes every default",
    file: "t.yaml",
    text: "name: t\nmodel: moa-tiny\nmethods: [dense]\nlengths: [256, 512]\nbenchmarks:\n" +
      "  longeval:\n",
    check: (e) =>
      assert.deepEqual(e, {
        name: "t",
        model: "moa-tiny",
        methods: ["dense"],
        densities: [1],
        lengths: [256, 512],
        profile: { lengths: [256, 512], samples: 8, block: 32, sink: 32, influence: "abs" },
        benchmarks: { longeval: { cases: 20 } },
        seed: 0,
        backend: "auto",
        spans: "per-query",
      }),
  },
  {
    name: "the reference span semantics with a sink of whole blocks",
    file: "t.yaml",
    text: append("spans: reference", "profile: {sink: 64, block: 32}"),
    check: (e) => {
      assert.equal(e.spans, "reference");
      assert.deepEqual([e.profile.sink, e.profile.block], [64, 32]);
    },
  },
  {
    name: "a density of exactly 1 is accepted",
    file: "t.yaml",
    text: edit(4, "densities: [1, 0.001]"),
    check: (e) => assert.deepEqual(e.densities, [1, 0.001]),
  },
  {
    name: "densities are kept when only dense is listed",
    file: "t.yaml",
    text: edit(3, "methods: [dense]"),
    check: (e) => assert.deepEqual(e.densities, [0.5]),
  },
  {
    name: "a sink of 0 and a negative seed are accepted",
    file: "t.yaml",
    text: append("profile: {sink: 0}", "seed: -7"),
    check: (e) => {
      assert.equal(e.profile.sink, 0);
      assert.equal(e.seed, -7);
    },
  },
  {
    name: "empty or null settings take their defaults",
    file: "t.yaml",
    text: edit(6, "benchmarks:", "  throughput:", "  perplexity: null", "profile:"),
    check: (e) => {
      assert.deepEqual(e.benchmarks, {
        perplexity: { tokens: 4096 },
        throughput: { decode: 32, batch: 1 },
      });
      assert.deepEqual(e.profile, {
        lengths: [128],
        samples: 8,
        block: 32,
        sink: 32,
        influence: "abs",
      });
    },
  },
  {
    name: "a .yml file and an integer written as 1.0 are accepted",
    file: "t.yml",
    text: edit(5, "lengths: [128.0]"),
    check: (e) => assert.deepEqual(e.lengths, [128]),
  },
  {
    name: "a model path is resolved against the file's folder, a plain name is kept",
    file: "exps/sub/t.yaml",
    text: edit(2, "model: ../models/llama-7b"),
    check: (e) => assert.equal(e.model, `${Deno.cwd()}/exps/models/llama-7b`),
  },
  {
    name: "a model path without a leading dot is resolved too",
    file: "exps/t.json",
    text: JSON.stringify({
      name: "t",
      model: "hf/llama",
      methods: ["dense"],
      lengths: [8],
      benchmarks: { longeval: { file: "/data/x.jsonl" } },
    }),
    check: (e) => {
      assert.equal(e.model, `${Deno.cwd()}/exps/hf/llama`);
      assert.deepEqual(e.benchmarks, { longeval: { file: "/data/x.jsonl", limit: null } });
    },
  },
  {
    name: "the $schema field is accepted and dropped",
    file: "t.json",
    text: JSON.stringify({ $schema: "./experiment.schema.json", ...parseYaml(BASE.join("\n")) }),
    check: (e) => assert.ok(!("$schema" in e)),
  },
];

interface Invalid {
  name: string;
  file: string;
  text: string;
  message: string;
  /** Whether the JSON Schema must reject it too (false for syntax errors). */
  schema: boolean;
}

const NAME_RULE = "a name matching /^[a-z0-9][a-z0-9_.-]*$/";

/** Invalid files and the exact message each must give. */
const INVALID: Invalid[] = [
  {
    name: "an unknown RULER task",
    file: "t.yaml",
    text: edit(6, "benchmarks: {ruler: {tasks: [vt, qa_squad]}}"),
    message: "t.yaml:6:34: benchmarks.ruler.tasks[1]: expected one of niah_single_1, " +
      "niah_single_2, niah_single_3, niah_multikey_1, niah_multikey_2, niah_multikey_3, " +
      'niah_multivalue, niah_multiquery, vt, cwe, fwe, got "qa_squad"',
    schema: true,
  },
  {
    name: "a learning rate of 0 for DuoAttention's gates",
    file: "t.yaml",
    text: append("duo: {lr: 0}"),
    message: "t.yaml:7:11: duo.lr: expected a positive number, got 0",
    schema: true,
  },
  {
    name: "an unknown field in duo",
    file: "t.yaml",
    text: append("duo: {sink: 4}"),
    message: "t.yaml:7:7: duo.sink: unknown field 'sink', expected one of pattern, steps, lr, " +
      "reg, length, recent",
    schema: true,
  },
  {
    name: "a density above 1",
    file: "t.yaml",
    text: edit(4, "densities: [0.5, 1.5]"),
    message: "t.yaml:4:18: densities[1]: expected a number in (0, 1], got 1.5",
    schema: true,
  },
  {
    name: "a density of 0",
    file: "t.yaml",
    text: edit(4, "densities: [0]"),
    message: "t.yaml:4:13: densities[0]: expected a number in (0, 1], got 0",
    schema: true,
  },
  {
    name: "a density written as a string",
    file: "t.yaml",
    text: edit(4, 'densities: ["0.5"]'),
    message: 't.yaml:4:13: densities[0]: expected a number in (0, 1], got "0.5"',
    schema: true,
  },
  {
    name: "a duplicate density",
    file: "t.yaml",
    text: edit(4, "densities: [0.5, 0.25, 0.5]"),
    message: "t.yaml:4:24: densities[2]: expected each value once, got 0.5 again " +
      "(first at densities[0])",
    schema: true,
  },
  {
    name: "a negative length",
    file: "t.yaml",
    text: edit(5, "lengths: [128, -5]"),
    message: "t.yaml:5:16: lengths[1]: expected a positive integer, got -5",
    schema: true,
  },
  {
    name: "a fractional length",
    file: "t.yaml",
    text: edit(5, "lengths: [12.5]"),
    message: "t.yaml:5:11: lengths[0]: expected a positive integer, got 12.5",
    schema: true,
  },
  {
    name: "an empty list of lengths",
    file: "t.yaml",
    text: edit(5, "lengths: []"),
    message: "t.yaml:5:10: lengths: expected a non-empty list of positive integers, " +
      "got an empty list",
    schema: true,
  },
  {
    name: "a duplicate length",
    file: "t.yaml",
    text: edit(5, "lengths: [128, 128]"),
    message: "t.yaml:5:16: lengths[1]: expected each value once, got 128 again " +
      "(first at lengths[0])",
    schema: true,
  },
  {
    name: "a duplicate method",
    file: "t.yaml",
    text: edit(3, "methods: [dense, moa, dense]"),
    message: 't.yaml:3:23: methods[2]: expected each value once, got "dense" again ' +
      "(first at methods[0])",
    schema: true,
  },
  {
    name: "an unknown method",
    file: "t.yaml",
    text: edit(3, "methods: [dense, sparse]"),
    message:
      't.yaml:3:18: methods[1]: expected one of dense, moa, streaming, h2o, moa-uniform, moa-layer, moa-head, moa-ref, moa-ctx, snapkv, adakv, duo, got "sparse"',
    schema: true,
  },
  {
    name: "an empty methods list",
    file: "t.yaml",
    text: edit(3, "methods: []"),
    message: "t.yaml:3:10: methods: expected a non-empty list of methods, got an empty list",
    schema: true,
  },
  {
    name: "methods written as a single string",
    file: "t.yaml",
    text: edit(3, "methods: dense"),
    message: 't.yaml:3:10: methods: expected a non-empty list of methods, got "dense"',
    schema: true,
  },
  {
    name: "a misspelt field, with a suggestion",
    file: "t.yaml",
    text: edit(4, "densitys: [0.5]"),
    message: "t.yaml:4:1: densitys: unknown field 'densitys', did you mean 'densities'?",
    schema: true,
  },
  {
    name: "an unknown span semantics",
    file: "t.yaml",
    text: append("spans: per-head"),
    message: 't.yaml:7:8: spans: expected one of per-query, reference, got "per-head"',
    schema: true,
  },
  {
    name: "the reference span semantics with a sink that is not whole blocks",
    file: "t.yaml",
    text: append("spans: reference", "profile: {sink: 16, block: 32}"),
    message: "t.yaml:7:1: spans: expected profile.sink (16) to be a multiple of profile.block " +
      "(32) for the reference span semantics, which keeps whole sink blocks",
    schema: false,
  },
  {
    name: "an unknown field with no close name",
    file: "t.yaml",
    text: append("colour: red"),
    message: "t.yaml:7:1: colour: unknown field 'colour', expected one of $schema, name, " +
      "model, methods, densities, lengths, profile, benchmarks, seed, backend, spans, duo",
    schema: true,
  },
  {
    name: "a misspelt profile field",
    file: "t.yaml",
    text: append("profile:", "  blok: 16"),
    message: "t.yaml:8:3: profile.blok: unknown field 'blok', did you mean 'block'?",
    schema: true,
  },
  {
    name: "a missing name, pointing at the top-level mapping",
    file: "t.yaml",
    text: "# no name below\n" + edit(1),
    message: `t.yaml:2:1: name: missing required field, expected ${NAME_RULE}`,
    schema: true,
  },
  {
    name: "missing densities while a sparse method is listed",
    file: "t.yaml",
    text: edit(4),
    message: 't.yaml:1:1: densities: missing required field (methods lists "moa"), ' +
      "expected a non-empty list of numbers in (0, 1]",
    schema: true,
  },
  {
    name: "missing benchmarks in a JSON file",
    file: "t.json",
    text: '\n  {"name": "t", "model": "m", "methods": ["dense"], "lengths": [1]}',
    message: "t.json:2:3: benchmarks: missing required field, expected a mapping of benchmarks",
    schema: true,
  },
  {
    name: "longeval cases and file together",
    file: "t.yaml",
    text: edit(6, "benchmarks:", "  longeval:", "    cases: 20", "    file: x.jsonl"),
    message: "t.yaml:9:5: benchmarks.longeval.file: expected either 'cases' or 'file', got both",
    schema: true,
  },
  {
    name: "a longeval limit without a file",
    file: "t.yaml",
    text: edit(6, "benchmarks:", "  longeval:", "    limit: 10"),
    message: "t.yaml:8:5: benchmarks.longeval.limit: expected 'limit' only together with " +
      "'file', got no 'file'",
    schema: true,
  },
  {
    name: "zero longeval cases",
    file: "t.yaml",
    text: edit(6, "benchmarks: {longeval: {cases: 0}}"),
    message: "t.yaml:6:32: benchmarks.longeval.cases: expected a positive integer, got 0",
    schema: true,
  },
  {
    name: "an empty value, pointing at its key",
    file: "t.yaml",
    text: edit(6, "benchmarks:", "  longeval:", "    cases:"),
    message: "t.yaml:8:5: benchmarks.longeval.cases: expected a positive integer, got nothing",
    schema: true,
  },
  {
    name: "no benchmarks",
    file: "t.yaml",
    text: edit(6, "benchmarks: {}"),
    message: "t.yaml:6:13: benchmarks: expected a mapping with at least one of longeval, ruler, " +
      "perplexity, throughput, got an empty mapping",
    schema: true,
  },
  {
    name: "a misspelt benchmark",
    file: "t.yaml",
    text: edit(6, "benchmarks: {longevals: {}}"),
    message: "t.yaml:6:14: benchmarks.longevals: unknown field 'longevals', " +
      "did you mean 'longeval'?",
    schema: true,
  },
  {
    name: "a misspelt throughput field",
    file: "t.yaml",
    text: edit(6, "benchmarks: {throughput: {decod: 8}}"),
    message: "t.yaml:6:27: benchmarks.throughput.decod: unknown field 'decod', " +
      "did you mean 'decode'?",
    schema: true,
  },
  {
    name: "perplexity tokens written as a word",
    file: "t.yaml",
    text: edit(6, "benchmarks: {perplexity: {tokens: many}}"),
    message: 't.yaml:6:35: benchmarks.perplexity.tokens: expected a positive integer, got "many"',
    schema: true,
  },
  {
    name: "a profile that is not a mapping",
    file: "t.yaml",
    text: append("profile: 3"),
    message: "t.yaml:7:10: profile: expected a mapping of profile settings, got 3",
    schema: true,
  },
  {
    name: "a negative sink",
    file: "t.yaml",
    text: append("profile: {sink: -1}"),
    message: "t.yaml:7:17: profile.sink: expected a non-negative integer, got -1",
    schema: true,
  },
  {
    name: "a zero profile length in a block list",
    file: "t.yaml",
    text: append("profile:", "  lengths:", "    - 64", "    - 0"),
    message: "t.yaml:10:7: profile.lengths[1]: expected a positive integer, got 0",
    schema: true,
  },
  {
    name: "a fractional seed",
    file: "t.yaml",
    text: append("seed: 1.5"),
    message: "t.yaml:7:7: seed: expected an integer, got 1.5",
    schema: true,
  },
  {
    name: "an unknown backend",
    file: "t.yaml",
    text: append("backend: gpu"),
    message: 't.yaml:7:10: backend: expected one of auto, cpu, webgpu, got "gpu"',
    schema: true,
  },
  {
    name: "a name with capitals and a space",
    file: "t.yaml",
    text: edit(1, "name: My Exp"),
    message: `t.yaml:1:7: name: expected ${NAME_RULE}, got "My Exp"`,
    schema: true,
  },
  {
    name: "an empty model",
    file: "t.yaml",
    text: edit(2, 'model: ""'),
    message: 't.yaml:2:8: model: expected a model name or a path to a Hugging Face folder, got ""',
    schema: true,
  },
  {
    name: "a model given as a number",
    file: "t.yaml",
    text: edit(2, "model: 7"),
    message: "t.yaml:2:8: model: expected a model name or a path to a Hugging Face folder, got 7",
    schema: true,
  },
  {
    name: "a top-level list",
    file: "t.yaml",
    text: "- name: t\n",
    message: "t.yaml:1:1: expected a mapping of experiment fields, got a list",
    schema: true,
  },
  {
    name: "an empty file",
    file: "t.yaml",
    text: "",
    message: "t.yaml:1:1: expected a mapping of experiment fields, got nothing",
    schema: true,
  },
  {
    name: "a density above 1 in JSON",
    file: "t.json",
    text: [
      "{",
      '  "name": "t",',
      '  "model": "moa-tiny",',
      '  "methods": ["moa"],',
      '  "densities": [0.5, 1.5],',
      '  "lengths": [128],',
      '  "benchmarks": {"perplexity": {}}',
      "}",
    ].join("\n"),
    message: "t.json:5:22: densities[1]: expected a number in (0, 1], got 1.5",
    schema: true,
  },
  {
    name: "a misspelt nested field in JSON",
    file: "t.json",
    text: [
      "{",
      '  "name": "t",',
      '  "model": "moa-tiny",',
      '  "methods": ["dense"],',
      '  "lengths": [128],',
      '  "benchmarks": {"perplexity": {"token": 5}}',
      "}",
    ].join("\n"),
    message: "t.json:6:33: benchmarks.perplexity.token: unknown field 'token', " +
      "did you mean 'tokens'?",
    schema: true,
  },
  // Syntax errors: the JSON Schema never sees these.
  {
    name: "a duplicate key in YAML",
    file: "t.yaml",
    text: "name: t\nname: u\n",
    message: "t.yaml:2:1: invalid YAML: duplicate field name",
    schema: false,
  },
  {
    name: "an unclosed YAML list",
    file: "t.yaml",
    text: "name: t\nmethods: [dense, moa\nlengths: [1]\n",
    message: "t.yaml:3:1: invalid YAML: Flow sequence in block collection must be sufficiently " +
      "indented and end with a ]",
    schema: false,
  },
  {
    name: "a tab used for YAML indentation",
    file: "t.yaml",
    text: "name: t\nbenchmarks:\n\tperplexity: {}\n",
    message: "t.yaml:3:1: invalid YAML: Tabs are not allowed as indentation",
    schema: false,
  },
  {
    name: "a trailing comma in JSON",
    file: "t.json",
    text: '{"name": "t",}',
    message: "t.json:1:14: invalid JSON: expected a double-quoted field name, got '}'",
    schema: false,
  },
  {
    name: "a missing comma in JSON",
    file: "t.json",
    text: '{\n  "name": "t"\n  "model": "m"\n}',
    message: "t.json:3:3: invalid JSON: expected ',' or '}', got '\"'",
    schema: false,
  },
  {
    name: "single quotes in JSON",
    file: "t.json",
    text: "{'name': 't'}",
    message: `t.json:1:2: invalid JSON: expected a double-quoted field name, got "'"`,
    schema: false,
  },
  {
    name: "a comment after JSON",
    file: "t.json",
    text: '{"name": "t"} // note',
    message: "t.json:1:15: invalid JSON: expected end of file, got '/'",
    schema: false,
  },
  {
    name: "an unquoted JSON string",
    file: "t.json",
    text: '{"name": t}',
    message: "t.json:1:10: invalid JSON: expected a JSON value, got 't'",
    schema: false,
  },
  {
    name: "an unterminated JSON string",
    file: "t.json",
    text: '{"name": "t',
    message: "t.json:1:12: invalid JSON: expected a closing quote, got end of file",
    schema: false,
  },
  {
    name: "a duplicate key in JSON",
    file: "t.json",
    text: '{"name": "t", "name": "u"}',
    message: "t.json:1:15: invalid JSON: duplicate field name",
    schema: false,
  },
  {
    name: "an unknown file extension",
    file: "t.toml",
    text: "name = 't'",
    message: "t.toml: expected an experiment file ending in .yaml, .yml or .json, got '.toml'",
    schema: false,
  },
];

Deno.test("parseExperiment() resolves valid files and fills defaults", async (t) => {
  for (const c of VALID) {
    await t.step(c.name, () => c.check(parseExperiment(c.text, c.file)));
  }
});

Deno.test("loadExperiment() reads the example, full and minimal fixtures", async (t) => {
  await t.step("the example file resolves with defaults filled", async () => {
    assert.deepEqual(await loadExperiment(testdata("example.yaml")), {
      name: "default",
      model: "moa-tiny",
      methods: ["dense", "moa", "streaming"],
      densities: [0.5, 0.25],
      lengths: [1024, 2048],
      profile: { lengths: [1024, 2048], samples: 8, block: 32, sink: 32, influence: "abs" },
      benchmarks: { longeval: { cases: 20 }, perplexity: { tokens: 4096 } },
      seed: 0,
      backend: "auto",
      spans: "per-query",
    });
  });
  await t.step("the full YAML file keeps every value and resolves its paths", async () => {
    assert.deepEqual(await loadExperiment(testdata("full.yaml")), {
      name: "full-1.0_b",
      model: testdata("models/tiny-llama"),
      methods: ["h2o", "dense", "moa"],
      densities: [1, 0.5, 0.125],
      lengths: [64, 128],
      profile: { lengths: [32], samples: 2, block: 16, sink: 0, influence: "signed" },
      benchmarks: {
        longeval: { file: testdata("longeval/cases.jsonl"), limit: 5 },
        perplexity: { tokens: 512 },
        throughput: { decode: 8, batch: 2 },
      },
      seed: -3,
      backend: "cpu",
      spans: "per-query",
    });
  });
  await t.step("the full JSON file resolves to the same experiment", async () => {
    assert.deepEqual(
      await loadExperiment(testdata("full.json")),
      await loadExperiment(testdata("full.yaml")),
    );
  });
  await t.step("the minimal file takes the defaults", async () => {
    const e = await loadExperiment(testdata("minimal.yaml"));
    assert.deepEqual(e.densities, [1]);
    assert.deepEqual(e.profile, {
      lengths: [256],
      samples: 8,
      block: 32,
      sink: 32,
      influence: "abs",
    });
    assert.deepEqual(e.benchmarks, { perplexity: { tokens: 4096 } });
  });
});

Deno.test("loadExperiment() reports bad and missing files by path", async (t) => {
  await t.step("an invalid value names the file, line and column", async () => {
    const path = testdata("bad_density.yaml");
    await assert.rejects(loadExperiment(path), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.equal(e.message, `${path}:6:5: densities[1]: expected a number in (0, 1], got 1.5`);
      return true;
    });
  });
  await t.step("a missing file is named", async () => {
    const path = testdata("no_such_experiment.yaml");
    await assert.rejects(loadExperiment(path), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.equal(e.message, `${path}: cannot read experiment file: no such file`);
      return true;
    });
  });
});

Deno.test("parseExperiment() rejects invalid files with line:column, field path and value", async (t) => {
  for (const c of INVALID) {
    await t.step(c.name, () => assert.equal(errorOf(c.text, c.file), c.message));
  }
});

/** @returns the cell ids, checking along the way that they are unique */
function idsOf(cells: Cell[]): string[] {
  const ids = cells.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length, "cell ids must be unique");
  return ids;
}

Deno.test("expandCells() builds method × density × length × benchmark", async (t) => {
  const exp = (text: string) => parseExperiment(text, "t.yaml");

  await t.step("dense appears once per length and benchmark, sparse once per density", () => {
    const cells = expandCells(
      exp(
        "name: t\nmodel: m\nmethods: [dense, moa, streaming]\ndensities: [0.5, 0.25]\n" +
          "lengths: [1024, 2048]\nbenchmarks: {longeval: {}, perplexity: {}}\n",
      ),
    );
    // (1 dense + 2 moa + 2 streaming densities) × 2 lengths × 2 benchmarks
    assert.equal(cells.length, (1 + 2 + 2) * 2 * 2);
    const ids = idsOf(cells);
    assert.deepEqual(ids.slice(0, 5), [
      "dense-d1-n1024-longeval",
      "dense-d1-n1024-perplexity",
      "dense-d1-n2048-longeval",
      "dense-d1-n2048-perplexity",
      "moa-d0.5-n1024-longeval",
    ]);
    assert.equal(ids.at(-1), "streaming-d0.25-n2048-perplexity");
    assert.ok(ids.includes("moa-d0.5-n2048-perplexity"));
    assert.ok(cells.filter((c) => c.method === "dense").every((c) => c.density === 1));
    assert.deepEqual(cells[6], {
      id: "moa-d0.5-n2048-longeval",
      method: "moa",
      density: 0.5,
      length: 2048,
      benchmark: "longeval",
    });
  });

  await t.step("dense ignores the densities list", () => {
    const cells = expandCells(
      exp(
        "name: t\nmodel: m\nmethods: [dense]\ndensities: [0.5, 0.25, 1]\nlengths: [64, 128]\n" +
          "benchmarks: {longeval: {}, perplexity: {}, throughput: {}}\n",
      ),
    );
    assert.equal(cells.length, 2 * 3);
    assert.deepEqual(idsOf(cells), [
      "dense-d1-n64-longeval",
      "dense-d1-n64-perplexity",
      "dense-d1-n64-throughput",
      "dense-d1-n128-longeval",
      "dense-d1-n128-perplexity",
      "dense-d1-n128-throughput",
    ]);
  });

  await t.step("throughput cells follow the same product, benchmarks in canonical order", () => {
    const cells = expandCells(
      exp(
        "name: t\nmodel: m\nmethods: [h2o, dense]\ndensities: [0.1, 1]\nlengths: [64]\n" +
          "benchmarks: {throughput: {decode: 4}, longeval: {cases: 2}}\n",
      ),
    );
    assert.deepEqual(idsOf(cells), [
      "h2o-d0.1-n64-longeval",
      "h2o-d0.1-n64-throughput",
      "h2o-d1-n64-longeval",
      "h2o-d1-n64-throughput",
      "dense-d1-n64-longeval",
      "dense-d1-n64-throughput",
    ]);
  });

  await t.step("the full fixture expands to the expected count with unique ids", async () => {
    const e = await loadExperiment(testdata("full.yaml"));
    const cells = expandCells(e);
    const sparse = e.methods.filter((m) => m !== "dense").length;
    const dense = e.methods.length - sparse;
    assert.equal(cells.length, (dense + sparse * e.densities.length) * e.lengths.length * 3);
    assert.equal(idsOf(cells).length, cells.length);
  });

  await t.step("a hand-built experiment with a repeated length is refused", () => {
    const e = exp(BASE.join("\n"));
    assert.throws(
      () => expandCells({ ...e, lengths: [128, 128] }),
      (err: unknown) =>
        err instanceof RangeError && err.message.includes("dense-d1-n128-perplexity"),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The JSON Schema against the TypeScript validator

type JsonSchema = { [k: string]: unknown };

const SCHEMA = JSON.parse(
  await Deno.readTextFile(new URL("./experiment.schema.json", import.meta.url)),
) as JsonSchema;

const ANNOTATIONS = new Set(["$schema", "title", "description", "default", "examples", "$defs"]);

/**
 * A small JSON Schema (2020-12) checker covering exactly the keywords experiment.schema.json
 * uses; any other keyword fails loudly so the schema cannot silently outgrow it.
 */
function conforms(schema: JsonSchema, x: unknown): boolean {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  const typeOk = (t: string): boolean => {
    switch (t) {
      case "integer":
        return Number.isInteger(x);
      case "number":
        return typeof x === "number";
      case "string":
        return typeof x === "string";
      case "boolean":
        return typeof x === "boolean";
      case "object":
        return isObject(x);
      case "array":
        return Array.isArray(x);
      case "null":
        return x === null;
      default:
        throw new Error(`conforms(): type '${t}' is not supported`);
    }
  };
  for (const [key, rule] of Object.entries(schema)) {
    if (ANNOTATIONS.has(key)) continue;
    const sub = rule as JsonSchema;
    let ok: boolean;
    switch (key) {
      case "$ref": {
        const name = (rule as string).replace("#/$defs/", "");
        ok = conforms((SCHEMA.$defs as Record<string, JsonSchema>)[name]!, x);
        break;
      }
      case "type":
        ok = (Array.isArray(rule) ? rule : [rule]).some(typeOk);
        break;
      case "enum":
        ok = (rule as unknown[]).some((v) => JSON.stringify(v) === JSON.stringify(x));
        break;
      case "pattern":
        ok = typeof x !== "string" || new RegExp(rule as string, "u").test(x);
        break;
      case "minLength":
        ok = typeof x !== "string" || x.length >= (rule as number);
        break;
      case "minimum":
        ok = typeof x !== "number" || x >= (rule as number);
        break;
      case "maximum":
        ok = typeof x !== "number" || x <= (rule as number);
        break;
      case "exclusiveMinimum":
        ok = typeof x !== "number" || x > (rule as number);
        break;
      case "minItems":
        ok = !Array.isArray(x) || x.length >= (rule as number);
        break;
      case "uniqueItems":
        ok = !Array.isArray(x) || new Set(x.map((v) => JSON.stringify(v))).size === x.length;
        break;
      case "items":
        ok = !Array.isArray(x) || x.every((v) => conforms(sub, v));
        break;
      case "contains":
        ok = !Array.isArray(x) || x.some((v) => conforms(sub, v));
        break;
      case "minProperties":
        ok = !isObject(x) || Object.keys(x).length >= (rule as number);
        break;
      case "required":
        ok = !isObject(x) || (rule as string[]).every((k) => Object.hasOwn(x, k));
        break;
      case "properties":
        ok = !isObject(x) ||
          Object.entries(sub).every(([k, s]) =>
            !Object.hasOwn(x, k) || conforms(s as JsonSchema, x[k])
          );
        break;
      case "additionalProperties":
        assert.equal(rule, false, "only additionalProperties: false is supported");
        ok = !isObject(x) ||
          Object.keys(x).every((k) => Object.hasOwn((schema.properties ?? {}) as object, k));
        break;
      case "oneOf":
        ok = (rule as JsonSchema[]).filter((s) => conforms(s, x)).length === 1;
        break;
      case "allOf":
        ok = (rule as JsonSchema[]).every((s) => conforms(s, x));
        break;
      case "if":
        ok = conforms(sub, x) ? conforms((schema.then ?? {}) as JsonSchema, x) : true;
        break;
      case "then":
        ok = true; // checked with "if"
        break;
      default:
        throw new Error(`conforms(): keyword '${key}' is not supported`);
    }
    if (!ok) return false;
  }
  return true;
}

/** @returns the property names a (sub)schema allows, following oneOf branches and $refs */
function propertyNames(schema: JsonSchema): string[] {
  const names = new Set(Object.keys((schema.properties ?? {}) as object));
  for (const branch of (schema.oneOf ?? []) as JsonSchema[]) {
    for (const k of propertyNames(branch)) names.add(k);
  }
  return [...names].sort();
}

const sorted = (xs: readonly string[]) => [...xs].sort();

Deno.test("experiment.schema.json agrees with the TypeScript validator", async (t) => {
  const top = SCHEMA.properties as Record<string, JsonSchema>;
  const benchmarks = top.benchmarks!.properties as Record<string, JsonSchema>;

  await t.step("it declares draft 2020-12 and forbids unknown fields everywhere", () => {
    assert.equal(SCHEMA.$schema, "https://json-schema.org/draft/2020-12/schema");
    for (const s of [SCHEMA, top.profile!, top.benchmarks!, benchmarks.perplexity!, top.duo!]) {
      assert.equal(s.additionalProperties, false);
    }
  });

  await t.step("the field names agree at every level", () => {
    assert.deepEqual(propertyNames(SCHEMA), sorted(FIELD_NAMES.experiment!));
    assert.deepEqual(propertyNames(top.profile!), sorted(FIELD_NAMES.profile!));
    assert.deepEqual(propertyNames(top.duo!), sorted(FIELD_NAMES.duo!));
    assert.deepEqual(propertyNames(top.benchmarks!), sorted(FIELD_NAMES.benchmarks!));
    for (const b of BENCHMARKS) {
      assert.deepEqual(propertyNames(benchmarks[b]!), sorted(FIELD_NAMES[b]!), b);
    }
  });

  await t.step("the enums, required fields and name pattern agree", () => {
    const defs = SCHEMA.$defs as Record<string, JsonSchema>;
    assert.deepEqual(defs.method!.enum, [...METHODS]);
    assert.deepEqual(top.backend!.enum, [...BACKENDS]);
    assert.deepEqual(Object.keys(benchmarks), [...BENCHMARKS]);
    assert.deepEqual(sorted(SCHEMA.required as string[]), sorted(REQUIRED_FIELDS));
    const rule = (SCHEMA.allOf as JsonSchema[])[0]!;
    const sparse = ((rule.if as JsonSchema).properties as Record<string, JsonSchema>).methods!;
    assert.deepEqual((sparse.contains as JsonSchema).enum, METHODS.filter((m) => m !== "dense"));
    assert.deepEqual(rule.then, { required: ["densities"] });
    assert.equal(top.name!.pattern, NAME_PATTERN.source);
  });

  await t.step("the validator requires exactly REQUIRED_FIELDS", () => {
    const all: Record<string, string> = {
      $schema: '$schema: "../experiment.schema.json"',
      name: "name: t",
      model: "model: moa-tiny",
      methods: "methods: [dense]",
      densities: "densities: [0.5]",
      lengths: "lengths: [128]",
      profile: "profile: {}",
      benchmarks: "benchmarks: {perplexity: {}}",
      seed: "seed: 1",
      backend: "backend: cpu",
      spans: "spans: reference",
      duo: "duo: {}",
    };
    assert.deepEqual(sorted(Object.keys(all)), sorted(FIELD_NAMES.experiment!));
    for (const field of Object.keys(all)) {
      const text = Object.entries(all).filter(([k]) => k !== field).map(([, v]) => v).join("\n");
      if (REQUIRED_FIELDS.includes(field)) {
        const message = errorOf(text, "t.yaml");
        assert.ok(message.startsWith(`t.yaml:1:1: ${field}: missing required field`), message);
        assert.ok(!conforms(SCHEMA, parseYaml(text)), field);
      } else {
        parseExperiment(text, "t.yaml");
        assert.ok(conforms(SCHEMA, parseYaml(text)), field);
      }
    }
  });

  await t.step("every valid file conforms to the schema", async () => {
    const files = ["example.yaml", "minimal.yaml", "full.yaml", "full.json"];
    for (const f of files) {
      assert.ok(conforms(SCHEMA, parseYaml(await Deno.readTextFile(testdata(f)))), f);
    }
    for (const c of VALID) assert.ok(conforms(SCHEMA, parseYaml(c.text)), c.name);
  });

  await t.step("every invalid field value is rejected by the schema too", () => {
    const cases = INVALID.filter((c) => c.schema);
    assert.ok(cases.length > 30);
    for (const c of cases) assert.ok(!conforms(SCHEMA, parseYaml(c.text)), c.name);
  });

  await t.step("the schema checker itself can reject and accept", () => {
    assert.ok(!conforms({ type: "integer", minimum: 1 }, 0));
    assert.ok(conforms({ type: "integer", minimum: 1 }, 1));
    assert.ok(!conforms(top.densities!, [0.5, 1.5]));
    assert.ok(conforms(top.densities!, [0.5, 1]));
  });
});
