import assert from "node:assert/strict";
import { loadTrainConfig, parseTrainConfig, phaseLrFactor, type TrainConfig } from "./config.ts";
import {
  type AdamState,
  adamwStep,
  clipGlobalNorm,
  cosineLr,
  exportCheckpoint,
  namedWeights,
  rewindTo,
  scheduleLr,
  scoredPositions,
  scoredTargets,
  train,
} from "./train.ts";
import { MixStream } from "./mix.ts";
import { byteLevelTokenizerJson, tokenizerFromJson } from "../../runtime/tokenizer.ts";
import { loadModel } from "../../runtime/hf.ts";
import { InputError } from "../../runtime/errors.ts";
import { tinyRecipe } from "./_testing.ts";

Deno.test("train() lowers the loss and resumes to the very same weights", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = tinyRecipe(24);
    const straight = await train(cfg, { out: `${dir}/a`, brownDocuments: 4, log: () => {} });
    await t.step("the loss falls", () => {
      const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
      const first = mean(straight.losses.slice(0, 4)), last = mean(straight.losses.slice(-4));
      assert.ok(last < first - 0.5, `loss ${first} → ${last}`);
      assert.equal(straight.steps, 24);
      assert.ok(straight.done);
    });
    await t.step("two pieces of 12 steps give the weights of one run of 24", async () => {
      const a = await train(cfg, {
        out: `${dir}/b`,
        brownDocuments: 4,
        maxSteps: 12,
        log: () => {},
      });
      assert.equal(a.steps, 12);
      assert.equal(a.done, false);
      const b = await train(cfg, { out: `${dir}/b`, brownDocuments: 4, log: () => {} });
      assert.equal(b.steps, 24);
      const wa = namedWeights(straight.model), wb = namedWeights(b.model);
      wa.forEach((w, k) => assert.deepEqual(wb[k]!.data, w.data, w.name));
      const csv = (await Deno.readTextFile(`${dir}/b/loss.csv`)).trim().split("\n");
      assert.equal(csv.length, 1 + 24, "one loss row per step, none repeated");
    });
    await t.step(
      "two gradient workers train to the same weights (float32 order aside)",
      async () => {
        const two = await train(cfg, {
          out: `${dir}/w`,
          brownDocuments: 4,
          workers: 2,
          log: () => {},
        });
        assert.equal(two.steps, 24);
        // the plumbing: each step's batch reaches the workers and their gradient the optimizer
        // (brown rows weigh the same, so how unequal masks combine is grad_pool_test.ts's part);
        // 24 Adam steps amplify float32 summation-order differences, hence not bit-equal
        const wa = namedWeights(straight.model), wb = namedWeights(two.model);
        wa.forEach((w, k) => {
          let err = 0;
          for (let i = 0; i < w.data.length; i++) {
            err = Math.max(err, Math.abs(w.data[i]! - wb[k]!.data[i]!));
          }
          assert.ok(err < 1e-3, `${w.name}: max difference ${err}`);
        });
        two.losses.forEach((l, i) =>
          assert.ok(Math.abs(l - straight.losses[i]!) < 1e-3, `step ${i + 1}`)
        );
      },
    );
    await t.step(
      "a later phase may change before it is reached, a finished one may not",
      async () => {
        const two = (first: number, T2: number) =>
          parseTrainConfig({
            ...JSON.parse(JSON.stringify(cfg)),
            phases: [
              { ...cfg.phases[0]!, steps: first },
              { ...cfg.phases[0]!, steps: 4, T: T2 },
            ],
          }, "two.json");
        await train(two(6, 160), {
          out: `${dir}/c`,
          brownDocuments: 4,
          maxSteps: 5,
          log: () => {},
        });
        const r = await train(two(6, 192), {
          out: `${dir}/c`,
          brownDocuments: 4,
          maxSteps: 2,
          log: () => {},
        });
        assert.equal(r.steps, 7);
        // the end of phase 0 (step 6) is checkpointed and kept; other superseded ones are not
        const files = [...Deno.readDirSync(`${dir}/c`)].map((e) => e.name)
          .filter((n) => n.startsWith("checkpoint-") && n.endsWith(".safetensors")).sort();
        assert.deepEqual(files, ["checkpoint-000006.safetensors", "checkpoint-000007.safetensors"]);
        // rewinding to the phase end and rerunning step 7 gives step 7's weights again
        await rewindTo(`${dir}/c`, 6);
        const again = await train(two(6, 192), {
          out: `${dir}/c`,
          brownDocuments: 4,
          maxSteps: 1,
          log: () => {},
        });
        assert.equal(again.steps, 7);
        namedWeights(r.model).forEach((w, k) =>
          assert.deepEqual(namedWeights(again.model)[k]!.data, w.data, w.name)
        );
        await assert.rejects(
          () => rewindTo(`${dir}/c`, 5),
          (e: unknown) => e instanceof InputError && /step 5; kept: 6, 7$/.test(e.message),
        );
        await assert.rejects(
          () => train(two(5, 192), { out: `${dir}/c`, brownDocuments: 4, log: () => {} }),
          (e: unknown) =>
            e instanceof InputError && /phases for the 7 steps already run differ/.test(e.message),
        );
      },
    );
    await t.step(
      "exportCheckpoint() writes the checkpoint's weights as a loadable folder",
      async () => {
        const step = await exportCheckpoint(cfg, `${dir}/b`, `${dir}/export`);
        assert.equal(step, 24);
        const loaded = await loadModel(`${dir}/export`);
        const want = namedWeights(straight.model), got = namedWeights(loaded);
        want.forEach((w, k) => assert.deepEqual(got[k]!.data, w.data, w.name));
      },
    );
    await t.step("the finished model is saved in the Hugging Face layout", async () => {
      for (
        const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
      ) {
        assert.ok((await Deno.stat(`${dir}/a/model/${f}`)).isFile, f);
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train() stops past its time limit with a checkpoint, and skips evaluations when told", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const exists = (f: string) => Deno.stat(f).then(() => true, () => false);
    const quiet = { brownDocuments: 4, log: () => {} };
    // no time at all: one step, checkpointed, then a stop
    const first = await train(tinyRecipe(3), {
      out: `${dir}/a`,
      maxSeconds: 0,
      evaluate: false,
      ...quiet,
    });
    assert.equal(first.steps, 1);
    assert.ok(!first.done);
    const latest = JSON.parse(await Deno.readTextFile(`${dir}/a/latest.json`));
    assert.equal(latest.step, 1);
    const rest = await train(tinyRecipe(3), { out: `${dir}/a`, evaluate: false, ...quiet });
    assert.ok(rest.done && rest.steps === 3 && rest.losses.length === 2, "resumed for steps 2-3");
    assert.ok(!(await exists(`${dir}/a/kinds.csv`)), "evaluate: false writes no kinds.csv");
    await train(tinyRecipe(3), { out: `${dir}/b`, ...quiet });
    assert.ok(await exists(`${dir}/b/kinds.csv`), "the recipe's end is evaluated by default");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("adamwStep() matches a hand computation", () => {
  const w = [{ name: "w", data: new Float32Array([1, -2]), decay: true }, {
    name: "n",
    data: new Float32Array([0.5]),
    decay: false,
  }];
  const g = [new Float32Array([0.1, -0.3]), new Float32Array([2])];
  const state: AdamState = {
    m: [new Float32Array(2), new Float32Array(1)],
    v: [new Float32Array(2), new Float32Array(1)],
    step: 0,
  };
  const o = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.5 };
  adamwStep(w, g, state, o);
  // step 1: m̂ = g, v̂ = g², update = lr·g/|g| = ±lr; decay multiplies by (1 − lr·wd) first
  assert.ok(Math.abs(w[0]!.data[0]! - (1 * 0.95 - 0.1)) < 1e-6);
  assert.ok(Math.abs(w[0]!.data[1]! - (-2 * 0.95 + 0.1)) < 1e-6);
  assert.ok(Math.abs(w[1]!.data[0]! - (0.5 - 0.1)) < 1e-6, "no decay on norms");
  adamwStep(w, g, state, o);
  // step 2, same gradient: m̂ = g and v̂ = g² again, so the update is ±lr again
  assert.ok(Math.abs(w[1]!.data[0]! - (0.4 - 0.1)) < 1e-6);
});

Deno.test("clipGlobalNorm() and cosineLr() follow their formulas", () => {
  const g = [new Float32Array([3, 0]), new Float32Array([4])];
  assert.equal(clipGlobalNorm(g, 1), 5);
  assert.ok(Math.abs(Math.hypot(g[0]![0]!, g[1]![0]!) - 1) < 1e-6);
  assert.equal(clipGlobalNorm(g, 10) < 1.0001, true, "below the limit nothing changes");
  assert.ok(Math.abs(cosineLr(9, 1, 10, 110, 0.1) - 1) < 1e-12, "end of warm-up");
  assert.ok(Math.abs(cosineLr(60, 1, 10, 110, 0.1) - 0.55) < 1e-12, "half way: (1 + 0.1) / 2");
  assert.ok(Math.abs(cosineLr(110, 1, 10, 110, 0.1) - 0.1) < 1e-12, "end");
});

Deno.test("parseTrainConfig() names the field it rejects", () => {
  const good = JSON.parse(JSON.stringify(tinyRecipe(5)));
  // deno-lint-ignore no-explicit-any
  const bad = (edit: (c: Record<string, any>) => void, msg: RegExp) => {
    const c = JSON.parse(JSON.stringify(good));
    edit(c);
    assert.throws(
      () => parseTrainConfig(c, "r.json"),
      (e: unknown) => e instanceof InputError && msg.test(e.message),
    );
  };
  bad((c) => (c.phases[0].T = 0), /^r\.json: phases\[0\]\.T: expected a positive integer, got 0$/);
  bad((c) => (c.model.kvHeads = 3), /model\.kvHeads: 3 must divide heads 2/);
  bad((c) => (c.optimizer.lrr = 1), /optimizer\.lrr: unknown field/);
  bad((c) => (c.phases[0].lines = [3, 2]), /phases\[0\]\.lines: min 3 exceeds max 2/);
  bad((c) => (c.phases[0].valueWeight = -1), /phases\[0\]\.valueWeight: expected .*got -1/);
  bad(
    (c) => (c.optimizer.restarts = [5]),
    /optimizer\.restarts: expected increasing steps between 1 and 4 .*got \[5\]/,
  );
  bad((c) => (c.optimizer.restarts = [3, 2]), /optimizer\.restarts: .*got \[3,2\]/);
  bad(
    (c) => Object.assign(c.optimizer, { restarts: [2], restartWarmups: [1, 1] }),
    /optimizer\.restartWarmups: expected 1 non-negative integers .*got \[1,1\]/,
  );
  bad((c) => (c.phases[0].keys = "all"), /phases\[0\]\.keys: expected "train-words" or "varied"/);
  bad(
    (c) => (c.phases[0].spread = 1024),
    /phases\[0\]\.spread: expected an integer between T and model\.maxPositions, got 1024/,
  );
  bad((c) => (c.phases[0].spreadShare = 2), /phases\[0\]\.spreadShare: expected a number in/);
  bad((c) => (c.tokenizer.keys = "some"), /tokenizer\.keys: expected "train-words" or "none"/);
  bad((c) => (c.eval.keys = ["words", "klingon"]), /eval\.keys: expected a non-empty list of/);
  bad((c) => (c.eval.lines = [1]), /eval\.lines\[0\]: expected an integer ≥ 2, got 1/);
  // and the new fields are read when valid
  const ok = JSON.parse(JSON.stringify(good));
  Object.assign(ok.phases[0], { keys: "varied", spread: 512, spreadShare: 0.25 });
  Object.assign(ok.eval, { lines: [50, 100], keys: ["madeup"] });
  ok.tokenizer.keys = "none";
  const cfg = parseTrainConfig(ok, "r.json");
  assert.deepEqual(
    [cfg.phases[0]!.keys, cfg.phases[0]!.spread, cfg.phases[0]!.spreadShare, cfg.tokenizer.keys],
    ["varied", 512, 0.25, "none"],
  );
  assert.deepEqual([cfg.eval.lines, cfg.eval.keys], [[50, 100], ["madeup"]]);
});

Deno.test("scheduleLr() restarts the cosine at each optimizer.restarts step", () => {
  const base = tinyRecipe(10); // warm-up 5, lr 0.01, min ratio 0.1
  const one = { ...base, phases: [{ ...base.phases[0]!, steps: 110 }] };
  const two = { ...one, optimizer: { ...one.optimizer, restarts: [60] } };
  for (const step of [0, 4, 30, 59]) {
    // before the restart, the first cycle is a whole schedule over 60 steps
    assert.ok(Math.abs(scheduleLr(two, step) - cosineLr(step, 0.01, 5, 60, 0.1)) < 1e-15);
    assert.equal(scheduleLr(one, step), cosineLr(step, 0.01, 5, 110, 0.1));
  }
  // after it: warm-up from 0 again, then decay to the recipe's end
  assert.ok(Math.abs(scheduleLr(two, 60) - 0.01 / 5) < 1e-15);
  assert.ok(Math.abs(scheduleLr(two, 64) - 0.01) < 1e-15);
  assert.ok(Math.abs(scheduleLr(two, 110) - 0.001) < 1e-15);
  // a restarted cycle's own warm-up: 2 steps instead of 5, the first cycle untouched
  const short = { ...two, optimizer: { ...two.optimizer, restartWarmups: [2] } };
  assert.equal(scheduleLr(short, 30), scheduleLr(two, 30));
  assert.ok(Math.abs(scheduleLr(short, 60) - 0.01 / 2) < 1e-15);
  assert.ok(Math.abs(scheduleLr(short, 61) - 0.01) < 1e-15);
  assert.ok(Math.abs(scheduleLr(short, 62) - cosineLr(2, 0.01, 2, 50, 0.1)) < 1e-15);
  assert.ok(scheduleLr(short, 64) < scheduleLr(two, 64));
});

Deno.test("the --quick recipe trains and its loss falls", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = await loadTrainConfig(new URL("./quick.json", import.meta.url).pathname);
    const r = await train(cfg, { out: dir, brownDocuments: 60, log: () => {} });
    const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
    const first = mean(r.losses.slice(0, 10)), last = mean(r.losses.slice(-10));
    assert.ok(last < first - 1, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("phaseLrFactor() ramps a phase's learning rate up over its warm-up, then scales it", () => {
  const cfg = tinyRecipe(10);
  const phase = { ...cfg.phases[0]!, warmup: 4, lrScale: 0.5 };
  assert.deepEqual([0, 1, 3, 4, 9].map((k) => phaseLrFactor(phase, k)), [
    0.125,
    0.25,
    0.5,
    0.5,
    0.5,
  ]);
  assert.equal(phaseLrFactor(cfg.phases[0]!, 0), 1);
  assert.throws(
    () =>
      parseTrainConfig({
        ...JSON.parse(JSON.stringify(cfg)),
        phases: [{ ...cfg.phases[0]!, warmup: -1 }],
      }, "w.json"),
    /w\.json: phases\[0\]\.warmup: expected a non-negative integer, got -1/,
  );
});

Deno.test("scoredPositions() picks the copies, the retrieved digits, their first, or all text", () => {
  const bytes = tokenizerFromJson(byteLevelTokenizerJson([]));
  const isDigit = (id: number) => /^[0-9]$/.test(bytes.decode([id]));
  const A = 2, Vw = 3;
  const base = { T: 700, lines: [2, 5] as [number, number], contextWeight: 0.5, answerWeight: A };
  const only = (k: string) => ({
    brown: 0,
    longeval: 0,
    multiQuery: 0,
    copy: 0,
    repeat: 0,
    [k]: 1,
  });
  assert.deepEqual(scoredTargets("multiQuery"), ["values", "first"]);
  // LongEval with echoed answers and weighted-up values: exactly the digits of each asked value,
  // in order, and their first digits
  const mq = new MixStream(
    bytes,
    { ...base, kinds: only("multiQuery"), answer: "echo", valueWeight: Vw },
    5,
  );
  for (let i = 0; i < 5; i++) {
    const ex = mq.next();
    const digits = (scored: "values" | "first") =>
      bytes.decode(scoredPositions(ex, scored, [A, Vw], isDigit).map((t) => ex.targets[t]!));
    const text = bytes.decode(ex.targets.slice(0, ex.targets.indexOf(2)));
    const answers = [...text.matchAll(/number\. {2}line [a-z-]+: REGISTER_CONTENT is <(\d+)>\n/g)];
    assert.equal(answers.length, ex.questions);
    assert.equal(digits("values"), answers.map((m) => m[1]).join(""));
    assert.equal(digits("first"), answers.map((m) => m[1]![0]).join(""));
    // the restated line keeps the answer weight; the value and its closing take valueWeight
    const firstDigit = scoredPositions(ex, "first", [A, Vw], isDigit)[0]!;
    assert.equal(ex.weights[firstDigit], Vw);
    assert.equal(bytes.decode([ex.targets[firstDigit - 3]!]), "s"); // "is", then " <"
    assert.deepEqual([...ex.weights.slice(firstDigit - 3, firstDigit)], [A, Vw, Vw]);
    // a value weight outside the answer weights is not scored
    assert.deepEqual(scoredPositions(ex, "values", [A], isDigit), []);
  }
  // repeat: every loss-weighted copy token
  const rp = new MixStream(bytes, { ...base, T: 64, kinds: only("repeat") }, 5);
  const ex = rp.next();
  const pos = scoredPositions(ex, "answers", [A], isDigit);
  assert.ok(pos.length > 0);
  assert.deepEqual(pos, [...ex.weights.keys()].filter((t) => ex.weights[t]! > 0));
  assert.deepEqual(scoredTargets("brown"), ["text"]);
  assert.deepEqual(scoredTargets("copy"), ["answers"]);
});

Deno.test("a recipe with tied embeddings trains one matrix and saves tie_word_embeddings", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const base = tinyRecipe(6);
    const cfg = parseTrainConfig({
      ...JSON.parse(JSON.stringify(base)),
      model: { ...base.model, tieEmbeddings: true },
    }, "tied.json");
    const r = await train(cfg, { out: `${dir}/t`, brownDocuments: 4, log: () => {} });
    assert.ok(r.done);
    assert.equal(r.model.weights.lmHead, r.model.weights.embed, "one array");
    assert.ok(!namedWeights(r.model).some((w) => w.name === "lm_head.weight"));
    const loaded = await loadModel(`${dir}/t/model`);
    assert.equal(loaded.config.tieWordEmbeddings, true);
    assert.deepEqual(loaded.weights.embed, r.model.weights.embed);
    assert.throws(
      () =>
        parseTrainConfig({
          ...JSON.parse(JSON.stringify(base)),
          model: { ...base.model, tieEmbeddings: "yes" },
        }, "tied.json"),
      /tied\.json: model\.tieEmbeddings: expected true or false, got "yes"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every committed recipe in data/train/ parses, and each extension keeps its base's phases", async () => {
  const dir = new URL("./", import.meta.url).pathname;
  const recipes = new Map<string, TrainConfig>();
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".json")) {
      recipes.set(e.name, await loadTrainConfig(dir + e.name));
    }
  }
  assert.ok(recipes.has("moa-tiny.json") && recipes.size >= 5, [...recipes.keys()].join(", "));
  // recipe vN+1 resumes from vN's final state: its first phases must be vN's, step for step
  // (v7 and v8 both extend v6; v9 extends v8; v10 extends v9; v11, the shipped moa-tiny.json,
  // extends v10; v12 extends v11)
  const chains = [
    ["moa-tiny-v6.json", "moa-tiny-v7.json"],
    ["moa-tiny-v6.json", "moa-tiny-v8.json"],
    ["moa-tiny-v8.json", "moa-tiny-v9.json"],
    ["moa-tiny-v9.json", "moa-tiny-v10.json"],
    ["moa-tiny-v10.json", "moa-tiny.json"],
    ["moa-tiny.json", "moa-tiny-v12.json"],
  ];
  for (const [a, b] of chains) {
    const base = recipes.get(a!), ext = recipes.get(b!);
    assert.ok(base && ext, `${a} and ${b} are committed`);
    assert.deepEqual(ext.phases.slice(0, base.phases.length), base.phases, `${b} extends ${a}`);
    assert.deepEqual(
      ext.optimizer.restarts?.slice(0, base.optimizer.restarts?.length ?? 0),
      base.optimizer.restarts ?? [],
    );
  }
});
