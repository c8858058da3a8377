/**
 * `deno task plan import|export` end to end, as subprocesses, on the fixtures in the layout of the
 * reference's published plans (solver/testdata/) and the shipped moa-tiny (4 layers, 4 query
 * heads, 2 kv heads).
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const testdata = (name: string) => `${ROOT}solver/testdata/${name}`;

/** Runs `experiments/commands/plan.ts` with `args` in `cwd`; returns exit code, stdout and stderr. */
async function cli(
  cwd: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}experiments/commands/plan.ts`, ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const files = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("deno task plan import and export", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("--help lists the chain, import and export", async () => {
      const r = await cli(dir, "--help");
      assert.equal(r.code, 0);
      for (const s of ["deno task plan --model DIR", "plan import FILE", "plan export PLAN"]) {
        assert.ok(r.stdout.includes(s), s);
      }
    });

    await t.step("a GQA plan whose groups agree round-trips byte for byte", async () => {
      const r = await cli(dir, "import", testdata("reference_gqa.json"), "--model", "moa-tiny");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "reference_gqa.plan.json");
      assert.equal(r.stderr, "");
      const plan = JSON.parse(await Deno.readTextFile(`${dir}/reference_gqa.plan.json`));
      assert.equal(plan.spans, "reference");
      assert.deepEqual([plan.sink, plan.block, plan.servingLength], [64, 64, 16384]);
      assert.deepEqual(plan.alphas, [[0, -1024], [1024, 0], [2048, -1024], [0, 8192]]);
      // density: the mean of the reference cache sizes at 16,384 tokens, written out here
      const size = (a: number, b: number) =>
        Math.min(Math.ceil(Math.max(Math.trunc(a + b * 16384), 128) / 64) * 64, 16384);
      let sum = 0;
      plan.alphas.forEach((row: number[], l: number) =>
        row.forEach((a, g) => (sum += size(a, plan.betas[l][g]) / 16384))
      );
      assert.ok(Math.abs(plan.density - sum / 8) < 1e-12, `${plan.density}`);
      const e = await cli(dir, "export", "reference_gqa.plan.json", "--out", "back.json");
      assert.equal(e.code, 0, e.stderr);
      assert.equal(e.stderr, "");
      assert.equal(
        await Deno.readTextFile(`${dir}/back.json`),
        await Deno.readTextFile(testdata("reference_gqa.json")),
      );
    });

    await t.step("a GQA plan whose groups disagree: warnings by layer and kv head", async () => {
      const r = await cli(
        dir,
        "import",
        testdata("reference_gqa_disagree.json"),
        "--model",
        "moa-tiny",
        "--out",
        "d.json",
      );
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 3, r.stderr);
      assert.match(
        lines[0]!,
        /^warning: .*reference_gqa_disagree\.json: layer 0 kv head 1 \(query heads 2–3\): rules differ/,
      );
      assert.match(lines[1]!, /layer 2 kv head 0 \(query heads 0–1\)/);
      assert.match(lines[2]!, /2 of 8 kv heads had query heads with different rules/);
      const e = await cli(dir, "export", "d.json", "--out", "d.reference.json");
      assert.equal(e.code, 0, e.stderr);
      const back = JSON.parse(await Deno.readTextFile(`${dir}/d.reference.json`));
      const orig = JSON.parse(await Deno.readTextFile(testdata("reference_gqa_disagree.json")));
      // the disagreeing pairs now carry the widest rule; everything else is as it was
      orig.alphas[0][3] = -1024;
      orig.betas[0][3] = 0.875;
      orig.alphas[2][1] = 2048;
      orig.betas[2][1] = 0;
      assert.deepEqual(back, orig);
    });

    await t.step("an MHA plan round-trips through a model with one kv head per head", async () => {
      const model = `${dir}/mha-model`;
      await Deno.mkdir(model);
      const config = JSON.parse(await Deno.readTextFile(`${ROOT}data/models/moa-tiny/config.json`));
      await Deno.writeTextFile(
        `${model}/config.json`,
        JSON.stringify({ ...config, num_hidden_layers: 2, num_key_value_heads: 4 }),
      );
      const r = await cli(dir, "import", testdata("reference_mha.json"), "--model", model);
      assert.equal(r.code, 0, r.stderr);
      const e = await cli(dir, "export", "reference_mha.plan.json");
      assert.equal(e.code, 0, e.stderr);
      assert.equal(e.stdout.trim(), "reference_mha.plan.reference.json");
      assert.equal(
        await Deno.readTextFile(`${dir}/reference_mha.plan.reference.json`),
        await Deno.readTextFile(testdata("reference_mha.json")),
      );
    });

    await t.step("a per-query plan exports with a warning about its semantics", async () => {
      const plan = JSON.parse(await Deno.readTextFile(`${dir}/reference_gqa.plan.json`));
      delete plan.spans;
      await Deno.writeTextFile(`${dir}/pq.json`, JSON.stringify({ ...plan, sink: 32, block: 32 }));
      const e = await cli(dir, "export", "pq.json");
      assert.equal(e.code, 0, e.stderr);
      assert.match(e.stderr, /pq\.json: the plan was made for per-query spans/);
      assert.match(e.stderr, /sink 32 and block 32; the reference runtime uses 64/);
    });

    await t.step(
      "bad input: exit 2, one line naming the file or field, nothing written",
      async () => {
        const sub = `${dir}/bad`;
        await Deno.mkdir(sub);
        await Deno.writeTextFile(`${sub}/broken.json`, '{"alphas": [[0.0, 1.0]], "betas": ');
        await Deno.writeTextFile(
          `${sub}/plan.json`,
          JSON.stringify({
            model: "no-such-model",
            sink: 64,
            block: 64,
            density: 0.5,
            lengths: [2048],
            servingLength: 4096,
            alphas: [[0, 0]],
            betas: [[0.5, 0.5]],
          }),
        );
        const before = files(sub);
        const cases: [string[], RegExp][] = [
          [
            ["import", "missing.json", "--model", "moa-tiny"],
            /^error: missing\.json: file not found$/,
          ],
          [
            ["import", "broken.json", "--model", "moa-tiny"],
            /^error: broken\.json: not valid JSON/,
          ],
          [
            ["import", testdata("reference_mha.json"), "--model", "moa-tiny"],
            /^error: .*reference_mha\.json: alphas: expected 4 layers \(the model's num_hidden_layers\), got "2 layers"$/,
          ],
          [
            ["import", testdata("reference_gqa.json")],
            /^error: plan import: --model DIR is required/,
          ],
          [
            ["import", testdata("reference_gqa.json"), "--model", "moa-tiny", "--spans", "x"],
            /^error: --spans: expected per-query or reference, got 'x'$/,
          ],
          [
            ["import", testdata("reference_gqa.json"), "--model", "moa-tiny", "--sink", "32"],
            /^error: --sink: 32 is not a multiple of --block 64/,
          ],
          [
            ["export", "plan.json"],
            /^error: plan\.json: model: no embedded model named 'no-such-model'.*; pass --model DIR/,
          ],
          [
            ["export", "plan.json", "--model", "moa-tiny"],
            /^error: plan\.json: alphas: 1 layers, but --model moa-tiny has 4$/,
          ],
          [["frobnicate"], /^error: unknown subcommand 'frobnicate'; expected import or export/],
        ];
        for (const [args, want] of cases) {
          const r = await cli(sub, ...args);
          assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
          assert.match(r.stderr.trim(), want, args.join(" "));
          assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        }
        assert.deepEqual(files(sub), before);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
