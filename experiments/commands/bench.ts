/**
 * `deno task bench <name> [--json]`: speed benchmarks that print ratios measured side by side in
 * one run. Benchmarks: `cpu` (prefill/decode of the CPU backend vs its engine's matmul), `train`
 * (the trainer's gradient, one program vs layer by layer), and the others `--help` lists.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError, runCli } from "../../runtime/errors.ts";
import { benchCpu, benchCpuDecode, benchDecodeAttention, cpuReport } from "../bench/cpu.ts";
import { AutoEngine, fastEngine } from "../../runtime/cpu/engine_auto.ts";
import { benchPareto, benchSolver } from "../../solver/bench.ts";
import { benchGpu, gpuReport, writeGpuBenchCsv } from "../bench/gpu.ts";
import { textTable } from "../table.ts";
import { scaleMain } from "./bench_scale.ts";
import { benchTrain } from "../bench/train.ts";
import { jaxDevice } from "./_args.ts";

const HELP = `moa benchmarks

Usage: deno task bench <name> [--json] [--model DIR] [--contexts 1024,4096] [options]

  solver one MILP of the reference size (32 layers × 32 kv heads × 48 rules, 4 density
         constraints) to a 0.1% gap, without and with a limit of 2 distinct rules per layer
         (HiGHS; Lagrangian bound and plan first when limited); target ≤ 60 s. Then the
         whole ε-constraint Pareto set of a moa-tiny-shaped problem (4 layers × 2 kv heads,
         profiled at 512/1024/2048); target ≤ 30 s
  cpu    prefill and decode tokens/s at each context for every CPU engine side by side
         (onnxruntime-node where it loads, onnxruntime-web, jax-js, TypeScript), each beside
         its limit: prefill GFLOP/s vs the engine's 1024³ matmul GFLOP/s, the KV bytes a
         decode step reads and their rate vs the copy bandwidth; MoA 50% vs dense at the
         longest context; then the targets against PyTorch's CPU figures, with ratios
  cpu-decode
         decode tokens/s and KV bytes of dense vs moa at 50% and 25% density at the longest
         --contexts length (default 4096), side by side, on the CPU backend
  scale  time and peak memory of load, calibrate, profile, solve, prefill and decode (dense
         and MoA 50%) on moa-tiny and random checkpoints of real shapes (0.5B, 1B, 8B) at
         1k–8k tokens, with growth exponents; see deno task bench scale --help
  train  the trainer's gradient (jax-js, wasm, one core) at each --contexts length (default
         256,1024,2048,4096) two ways side by side: one jitted program against layer by
         layer with recomputation and blocked attention, tokens/s and their ratio, the two
         losses' difference; where the one program would exceed wasm's 4 GiB only layer by
         layer runs. --batch sequences per step, --rounds timed rounds (default 3),
         --device wasm|webgpu, --program-gib N the one program's memory budget (default 3)
  gpu    WebGPU decode/prefill tokens/s, KV bytes and decode-attention bandwidth (GPU
         timestamps) for dense, moa 50%/25% and streaming 50%, at equal batch and at the
         largest batch under a KV memory cap, for moa-tiny and a 7B-class shape, beside
         onnxruntime-web's WebGPU EP; ratios to dense and the issue's targets. On a software
         adapter (lavapipe) sizes shrink: contexts 256,512, a 2-layer 7B-width shape

Options:
  --json             print JSON rows instead of a table
  --model DIR        model folder (default: data/models/moa-tiny)
  --contexts LIST    comma-separated context lengths (default 1024,4096; gpu: 4k…32k, or
                     256,512 on a software adapter)

gpu options:
  --shapes LIST      tiny, 7b (default both)
  --decode N         decode steps timed per row (default 64; 8 on a software adapter)
  --batch N          batch of the equal-batch rows (default 1)
  --kv-cap-mib N     KV memory cap of the max-batch rows (default 40960; 16 on software)
  --csv FILE         also write the rows as CSV (default results/bench/gpu.csv)
`;

async function main(args: string[]): Promise<number> {
  if (args[0] === "scale") return await scaleMain(args.slice(1));
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      model: { type: "string" },
      contexts: { type: "string" },
      shapes: { type: "string", default: "tiny,7b" },
      decode: { type: "string" },
      batch: { type: "string", default: "1" },
      "kv-cap-mib": { type: "string" },
      rounds: { type: "string", default: "3" },
      device: { type: "string", default: "wasm" },
      "program-gib": { type: "string", default: "3" },
      csv: { type: "string", default: "results/bench/gpu.csv" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  const contexts = (values.contexts ??
    ({ gpu: "", "cpu-decode": "4096", train: "256,1024,2048,4096" }[positionals[0]!] ??
      "1024,4096"))
    .split(",").filter((x) => x !== "").map(Number);
  if (contexts.some((c) => !Number.isInteger(c) || c < 1)) {
    throw new InputError(
      `--contexts: expected positive integers separated by commas, got '${values.contexts}'`,
    );
  }
  const name = positionals[0];
  /** A positive integer flag's value (undefined when not given). */
  const posInt = (flag: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      throw new InputError(`--${flag}: expected a positive integer, got '${v}'`);
    }
    return n;
  };
  if (name === "solver") {
    const rows = [];
    for (const limit of [0, 2]) {
      const r = await benchSolver({ maxDistinctPerLayer: limit, timeLimit: 60 });
      rows.push({
        problem: `32×32 kv heads × 48 rules, 4 density rows${
          limit ? `, ≤ ${limit} rules per layer` : ""
        }`,
        seconds: r.seconds,
        "gap %": r.gap * 100,
        objective: r.objective,
        target: `≤ 60 s, gap ≤ 0.1%: ${r.seconds <= 60 && r.gap <= 1e-3 ? "met" : "missed"}`,
      });
    }
    const p = await benchPareto({ timeLimit: 60 });
    rows.push({
      problem: `moa-tiny shape, ${p.problem.groups} kv heads × ${p.problem.choices} rules: ` +
        `Pareto set (${p.plans} plans, slowest solve ${p.slowest.toFixed(2)} s)`,
      seconds: p.seconds,
      "gap %": p.maxGap * 100,
      objective: "–",
      target: `≤ 30 s: ${p.seconds <= 30 ? "met" : "missed"}`,
    });
    console.log(values.json ? JSON.stringify(rows) : textTable(rows));
    return 0;
  }
  if (name === "cpu-decode") {
    const rows = await benchCpuDecode({
      modelDir: values.model ?? new URL("../../data/models/moa-tiny", import.meta.url).pathname,
      context: Math.max(...contexts),
      ...(values.decode ? { decode: Number(values.decode) } : {}),
      batch: Number(values.batch),
    });
    if (values.json) console.log(JSON.stringify(rows));
    else console.log(textTable(rows as unknown as Record<string, string | number>[]));
    return 0;
  }
  if (name === "gpu") {
    const shapes = values.shapes.split(",");
    for (const sh of shapes) {
      if (sh !== "tiny" && sh !== "7b") {
        throw new InputError(`--shapes: expected tiny and/or 7b, got '${sh}'`);
      }
    }
    const cap = posInt("kv-cap-mib", values["kv-cap-mib"]);
    const decode = posInt("decode", values.decode);
    const rows = await benchGpu({
      modelDir: values.model ?? new URL("../../data/models/moa-tiny", import.meta.url).pathname,
      ...(contexts.length ? { contexts } : {}),
      shapes: shapes as ("tiny" | "7b")[],
      ...(decode ? { decode } : {}),
      batch: posInt("batch", values.batch)!,
      ...(cap ? { kvCap: cap * 2 ** 20 } : {}),
      log: (l) => console.error(l),
    });
    await Deno.mkdir(values.csv.replace(/\/[^/]*$/, "") || ".", { recursive: true });
    await writeGpuBenchCsv(values.csv, rows);
    if (values.json) console.log(JSON.stringify(rows));
    else console.log(gpuReport(rows) + `\nrows written to ${values.csv}`);
    return 0;
  }
  if (name === "train") {
    const rows = await benchTrain({
      model: values.model ?? new URL("../../data/models/moa-tiny", import.meta.url).pathname,
      lengths: contexts,
      batch: posInt("batch", values.batch)!,
      rounds: posInt("rounds", values.rounds)!,
      device: jaxDevice(values.device),
      programBytes: posInt("program-gib", values["program-gib"])! * 2 ** 30,
      log: (l) => console.error(l),
    });
    if (values.json) console.log(JSON.stringify(rows));
    else console.log(textTable(rows as unknown as Record<string, string | number>[]));
    return 0;
  }
  if (name !== "cpu") {
    throw new InputError(
      `unknown benchmark '${name}'; available: cpu, cpu-decode, gpu, scale, solver, train`,
    );
  }
  const rows = await benchCpu({
    modelDir: values.model ?? new URL("../../data/models/moa-tiny", import.meta.url).pathname,
    contexts,
    ...(values.decode ? { decode: Number(values.decode) } : {}),
    log: (l) => console.error(l),
  });
  const fast = await fastEngine();
  const native = fast.name.startsWith("ort-native") && fast instanceof AutoEngine
    ? fast.large
    : null;
  const kernels = await benchDecodeAttention(contexts, native);
  if (values.json) console.log(JSON.stringify({ rows, kernels }));
  else console.log(cpuReport(rows, fast.name, kernels));
  return 0;
}

if (import.meta.main) await runCli(main);
