/**
 * `deno task longeval` end to end: the command runs as a subprocess on a small random model, and
 * its accuracy is checked against greedy generation and scoring done here, without the command's
 * code (no session, no runLongEval).
 */
import assert from "node:assert/strict";
import {
  generateCases,
  type LongEvalCase,
  readLongEvalJsonl,
  scoreAnswer,
  summarize,
  writeLongEvalJsonl,
} from "../../data/longeval/longeval.ts";
import { writeRandomModel } from "../../data/models/init_random.ts";
import { loadModel } from "../../runtime/hf.ts";
import { loadTokenizer, type TextTokenizer } from "../../runtime/tokenizer.ts";
import { CpuModel } from "../../runtime/cpu/forward.ts";
import { fastEngine } from "../../runtime/cpu/engine_auto.ts";
import { generateGreedy } from "../../runtime/cpu/generate.ts";
import { ANSWER_TOKENS } from "../../data/benchmarks.ts";
import { hasGpu } from "../../runtime/gpu/device.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Whether a WebGPU adapter is here (the `--backend webgpu` step is ignored without one). */
const gpuHere = await hasGpu();

/** Runs `experiments/commands/longeval.ts` with `args`; returns exit code, stdout and stderr. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "experiments/commands/longeval.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A model folder loaded here, independently of runtime/session.ts. */
interface Reference {
  cpu: CpuModel;
  tokenizer: TextTokenizer;
  bos: number | null;
  stop: number[];
}

async function loadReference(dir: string): Promise<Reference> {
  const model = await loadModel(dir);
  const tokenizer = await loadTokenizer(dir);
  const nl = tokenizer.encode("\n");
  assert.equal(nl.length, 1, "the byte-level tokenizer encodes a newline as one token");
  return {
    cpu: new CpuModel(model, await fastEngine()),
    tokenizer,
    bos: model.config.bosTokenId,
    stop: [...model.config.eosTokenIds, nl[0]!],
  };
}

function idsOf(r: Reference, prompt: string): number[] {
  const ids = r.tokenizer.encode(prompt);
  return r.bos === null ? ids : [r.bos, ...ids];
}

/** The model's greedy answer to each case. */
async function answers(r: Reference, cases: LongEvalCase[]): Promise<string[]> {
  // `await` keeps this working whether generateGreedy is synchronous or returns a promise
  const outs = await generateGreedy(r.cpu, cases.map((c) => idsOf(r, c.prompt)), {
    maxNewTokens: ANSWER_TOKENS,
    stopTokens: r.stop,
  });
  return outs.map((o) => r.tokenizer.decode(o));
}

/** Accuracy, deciles and mean prompt length computed here. */
async function reference(r: Reference, cases: LongEvalCase[]) {
  const texts = await answers(r, cases);
  const results = cases.map((c, i) => ({ c, correct: scoreAnswer(texts[i]!, c.expected).correct }));
  const sum = summarize(results);
  const promptMean = cases.reduce((a, c) => a + idsOf(r, c.prompt).length, 0) / cases.length;
  return { ...sum, promptMean };
}

Deno.test("deno task longeval scores a model's answers like generateGreedy + scoreAnswer", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "longeval_cli_test_" });
  try {
    // A random 1-layer model rarely answers with digits; take the first seed whose answer to
    // every case holds an integer, so "expected = what the model says" is possible.
    const modelDir = `${tmp}/model`;
    let ref: Reference | null = null;
    let cases: LongEvalCase[] = [];
    let predicted: number[] = [];
    for (let seed = 0; seed < 32 && ref === null; seed++) {
      await writeRandomModel(modelDir, { layers: 1, hidden: 32, heads: 2, kvHeads: 1, seed });
      const r = await loadReference(modelDir);
      cases = generateCases({
        count: 3,
        targetLength: 700,
        seed: 0,
        countTokens: (s) => idsOf(r, s).length,
      });
      const p = (await answers(r, cases)).map((text) => scoreAnswer(text, 0).predicted);
      if (p.every((x) => x !== null)) {
        ref = r;
        predicted = p as number[];
      }
    }
    assert.ok(ref !== null, "no model seed in 0..31 answers every case with an integer");
    const r = ref;
    for (const c of cases) assert.ok(c.tokens! > 600 && c.tokens! <= 700, `${c.tokens} tokens`);

    // case 0 asks for what the model says; the others keep their generated values
    const mixed = cases.map((c, i) => (i === 0 ? { ...c, expected: predicted[0]! } : c));
    const mixedFile = `${tmp}/mixed.jsonl`;
    await writeLongEvalJsonl(mixedFile, mixed);

    await t.step("--json prints one JSON object whose accuracy matches the reference", async () => {
      const want = await reference(r, mixed);
      assert.ok(want.accuracy > 0 && want.accuracy < 1, `reference accuracy ${want.accuracy}`);
      const { code, stdout, stderr } = await cli(
        "--model",
        modelDir,
        "--cases",
        mixedFile,
        "--json",
        "--backend",
        "cpu",
      );
      assert.equal(code, 0, stderr);
      const lines = stdout.trim().split("\n");
      assert.equal(lines.length, 1, `stdout: ${stdout}`);
      const got = JSON.parse(lines[0]!);
      assert.deepEqual(Object.keys(got).sort(), [
        "accuracy",
        "backend",
        "by_decile",
        "density",
        "method",
        "model",
        "n",
        "prompt_tokens_mean",
        "seconds",
      ]);
      assert.equal(got.model, modelDir);
      assert.equal(got.method, "dense");
      assert.equal(got.density, 1);
      assert.equal(got.backend, "cpu");
      assert.equal(got.n, 3);
      assert.equal(got.accuracy, want.accuracy);
      assert.deepEqual(got.by_decile, want.byDecile);
      assert.equal(got.prompt_tokens_mean, want.promptMean);
      assert.ok(typeof got.seconds === "number" && got.seconds >= 0);
      assert.match(stderr, /longeval 3 cases/);
    });

    await t.step("--limit 2 evaluates only the first two cases", async () => {
      const want = await reference(r, mixed.slice(0, 2));
      const { code, stdout, stderr } = await cli(
        "--model",
        modelDir,
        "--cases",
        mixedFile,
        "--limit",
        "2",
        "--json",
      );
      assert.equal(code, 0, stderr);
      const got = JSON.parse(stdout);
      assert.equal(got.n, 2);
      assert.equal(got.accuracy, want.accuracy);
      assert.deepEqual(got.by_decile, want.byDecile);
    });

    await t.step("expected numbers equal to the model's answers give accuracy 1", async () => {
      const file = `${tmp}/right.jsonl`;
      await writeLongEvalJsonl(file, cases.map((c, i) => ({ ...c, expected: predicted[i]! })));
      const { code, stdout, stderr } = await cli("--model", modelDir, "--cases", file, "--json");
      assert.equal(code, 0, stderr);
      const got = JSON.parse(stdout);
      assert.equal(got.n, 3);
      assert.equal(got.accuracy, 1);
      for (const d of got.by_decile) assert.equal(d.accuracy, 1);
    });

    await t.step("changed expected numbers give accuracy 0", async () => {
      const file = `${tmp}/wrong.jsonl`;
      await writeLongEvalJsonl(file, cases.map((c, i) => ({ ...c, expected: predicted[i]! + 1 })));
      const { code, stdout, stderr } = await cli("--model", modelDir, "--cases", file, "--json");
      assert.equal(code, 0, stderr);
      assert.equal(JSON.parse(stdout).accuracy, 0);
    });

    await t.step({
      name: "--backend webgpu generates on the GPU and scores as the CPU does",
      ignore: !gpuHere,
      fn: async () => {
        for (const [file, n] of [[mixedFile, 3], [`${tmp}/right.jsonl`, 3]] as const) {
          const want = await reference(r, await readLongEvalJsonl(file));
          const args = ["--model", modelDir, "--cases", file, "--json", "--backend", "webgpu"];
          const { code, stdout, stderr } = await cli(...args);
          assert.equal(code, 0, stderr);
          const got = JSON.parse(stdout);
          assert.equal(got.backend, "webgpu");
          assert.equal(got.n, n);
          assert.equal(got.accuracy, want.accuracy);
          assert.deepEqual(got.by_decile, want.byDecile);
          assert.match(stderr, /dense on webgpu/);
        }
      },
    });

    await t.step("without --json it prints a readable summary", async () => {
      const file = `${tmp}/right.jsonl`;
      const { code, stdout, stderr } = await cli("--model", modelDir, "--cases", file);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /accuracy 1\.0000 \(3 of 3 cases\)/);
      assert.match(stdout, /decile {2}accuracy {2}cases/);
    });

    // errors: exit 2, `error: ...` on stderr, nothing on stdout
    const fails = async (args: string[], ...parts: string[]) => {
      const { code, stdout, stderr } = await cli(...args);
      assert.equal(code, 2, `exit code; stderr: ${stderr}`);
      assert.equal(stdout, "");
      assert.match(stderr, /^error: /);
      for (const p of parts) assert.ok(stderr.includes(p), `stderr lacks '${p}': ${stderr}`);
    };
    const base = ["--model", modelDir, "--cases", mixedFile];

    await t.step("a malformed JSONL line is reported as file:line", async () => {
      const file = `${tmp}/bad.jsonl`;
      const good = JSON.stringify({ prompt: "p", expected_number: 1 });
      await Deno.writeTextFile(file, `${good}\n{"prompt": "p", "expected_number": \n`);
      await fails(["--model", modelDir, "--cases", file], `${file}:2:`, "invalid JSON");
    });

    await t.step("a missing model folder is rejected", async () => {
      await fails(
        ["--model", `${tmp}/nope`, "--cases", mixedFile],
        `'${tmp}/nope' is not a Hugging Face model folder`,
      );
    });

    await t.step("--backend webgpu with h2o is refused before anything loads", async () => {
      await fails(
        [...base, "--method", "h2o", "--density", "0.5", "--backend", "webgpu"],
        "--backend webgpu: h2o has no GPU cache",
      );
    });

    await t.step("--method moa needs a plan", async () => {
      await fails([...base, "--method", "moa"], "--plan: required with --method moa");
    });

    await t.step("--density 1.5 is rejected", async () => {
      await fails([...base, "--density", "1.5"], "--density: expected a number in (0, 1]", "1.5");
    });

    await t.step("--density with the dense method is rejected", async () => {
      await fails(
        [...base, "--density", "0.5"],
        "--density applies to sparse methods; dense always uses density 1",
      );
    });

    await t.step("--plan must name a JSON file, and does not apply to dense", async () => {
      const moa = [...base, "--method", "moa"];
      await fails(
        [...moa, "--plan", `${tmp}/none.json`],
        `--plan: ${tmp}/none.json: plan file not found`,
      );
      const bad = `${tmp}/bad_plan.json`;
      await Deno.writeTextFile(bad, "{ not json");
      await fails([...moa, "--plan", bad], `--plan: ${bad}`);
      const plan = `${tmp}/plan.json`;
      await Deno.writeTextFile(plan, JSON.stringify({ alphas: [[0]], betas: [[1]] }));
      await fails([...base, "--plan", plan], "--plan applies to sparse methods");
    });

    await t.step(
      "missing options, a bad --limit and unknown options give a usage hint",
      async () => {
        await fails(["--cases", mixedFile], "missing --model", "usage: deno task longeval");
        await fails(["--model", modelDir], "missing --cases", "usage: deno task longeval");
        await fails([...base, "--limit", "0"], "--limit: expected a positive integer, got '0'");
        await fails([...base, "--limit", "2.5"], "got '2.5'");
        await fails([...base, "--bogus"], "'--bogus'", "usage: deno task longeval");
      },
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
