/**
 * `deno task bench scale`: how time and memory grow with the model's size and the sequence
 * length, for every stage of the pipeline — load, calibrate, profile, solve, prefill, decode
 * (dense and MoA at 50% density) — on moa-tiny and on random checkpoints of real models' shapes
 * (Qwen2.5-0.5B, Llama-3.2-1B, Llama-3-8B; `data/models/init_random.ts`, generated under
 * `results/scale/` on first use). Random weights give time and memory figures, no accuracy.
 *
 * Each (model, length) runs in a child process, so that every stage's peak resident memory is
 * its own: before a stage the child collects garbage and resets the kernel's high-water mark
 * (`/proc/self/clear_refs`), after it reads `VmHWM`. jax-js's WebAssembly memory, which never
 * shrinks, is read from the memory object itself.
 *
 * @module
 */
import { join } from "node:path";
// @ts-types="@types/d3-dsv"
import { csvFormat } from "d3-dsv";
import { writeFileAtomic } from "../../runtime/atomic.ts";
import { InputError } from "../../runtime/errors.ts";
import { loadModel } from "../../runtime/hf.ts";
import { loadTokenizer } from "../../runtime/tokenizer.ts";
import { modelBytes, type ModelConfig } from "../../runtime/model.ts";
import { CpuModel } from "../../runtime/cpu/forward.ts";
import type { Engine } from "../../runtime/cpu/engine.ts";
import { AutoEngine, fastEngine } from "../../runtime/cpu/engine_auto.ts";
import { DenseKvCache, type KvCache } from "../../runtime/cpu/kv_cache.ts";
import { MoaKvCache } from "../../runtime/cpu/sparse_cache.ts";
import { initJax } from "../../runtime/autodiff/jax_model.ts";
import { Rng } from "../../runtime/rng.ts";
import { buildCalibration, type CalibrationSample } from "../../data/calibration.ts";
import {
  parameterCount,
  type RealShape,
  writeShapedCheckpoint,
} from "../../data/models/init_random.ts";
import { type BlockInfluence, profileInfluence, ruleLosses } from "../../solver/profile.ts";
import { candidateRules } from "../../solver/rules.ts";
import { densityProblemFromRules } from "../../solver/problem.ts";
import { solveMilp } from "../../solver/milp.ts";
import { type Plan, planFromChoice } from "../../solver/plan.ts";
import { matmulGflops, prefillFlops } from "./cpu.ts";
import { textTable } from "../table.ts";

/** The models of the benchmark: moa-tiny as shipped, and random checkpoints of real shapes. */
export const SCALE_MODELS = {
  tiny: null,
  "0.5b": "qwen2.5-0.5b",
  "1b": "llama-3.2-1b",
  "8b": "llama-3-8b",
} as const satisfies Record<string, RealShape | null>;

/** A name of {@linkcode SCALE_MODELS}. */
export type ScaleModel = keyof typeof SCALE_MODELS;

/** The stages a run can measure (`--stages`). */
export const SCALE_STAGES = ["load", "calibrate", "profile", "solve", "prefill", "decode"] as const;

/** One of {@linkcode SCALE_STAGES}. */
export type ScaleStage = (typeof SCALE_STAGES)[number];

/**
 * The CSV's columns, in order; the README's "Your own model" and `--help` describe each:
 * - `model`: tiny, 0.5b, 1b or 8b; `shape`: the architecture it has;
 * - `params`: parameters; `checkpoint_bytes`: bytes of its safetensors files;
 * - `length`: tokens of the sequence (the profile's, prefill's, and the context decode starts at);
 * - `stage`: load, matmul (the engine's 1024³ product, prefill's ceiling), calibrate, profile
 *   (layers on the CPU engine), profile_jax_wasm (layers in jax-js on WebAssembly), solve,
 *   prefill and decode_dense (a dense cache), prefill_moa50 and decode_moa50 (MoA caches of the
 *   plan solved at 50% density);
 * - `seconds`: the stage's wall time (decode: all its steps); `per_token_s`: decode seconds per
 *   token; `gflops`: useful GFLOP/s of prefill and matmul;
 * - `peak_rss_bytes`: the process's peak resident memory during the stage (the model included);
 *   `base_rss_bytes`: resident memory when it started; `wasm_bytes`: jax-js's WebAssembly memory
 *   after the stage (its peak: it never shrinks), where jax-js ran;
 * - `engine`: the CPU engine; `note`: what else the row needs said.
 */
export const SCALE_COLUMNS = [
  "model",
  "shape",
  "params",
  "checkpoint_bytes",
  "length",
  "stage",
  "seconds",
  "per_token_s",
  "gflops",
  "peak_rss_bytes",
  "base_rss_bytes",
  "wasm_bytes",
  "engine",
  "note",
] as const;

/** One row of the CSV. */
export type ScaleRow = Record<(typeof SCALE_COLUMNS)[number], string | number>;

/** What one child process measures. */
export interface ChildSpec {
  model: ScaleModel;
  dir: string;
  length: number;
  stages: ScaleStage[];
  /** Decode steps timed per cache. */
  decode: number;
  /** Tile size of the profile. */
  block: number;
  /** Also profile with the layers in jax-js on WebAssembly. */
  jax: boolean;
}

// ---------------------------------------------------------------------------------------------
// measurement inside a child

/** Resident memory from /proc/self/status (kB → bytes), or Deno's figure elsewhere. */
function status(field: "VmHWM" | "VmRSS"): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(new RegExp(`${field}:\\s*(\\d+)`));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  return Deno.memoryUsage().rss;
}

/** Collects garbage and starts a new high-water mark (Linux: clear_refs 5). */
function resetPeak(): number {
  (globalThis as { gc?: () => void }).gc?.();
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
  } catch { /* the peak then counts from the start of the process */ }
  return status("VmRSS");
}

/** WebAssembly memories created while `track` is on (jax-js's, made when it starts). */
const tracked: WebAssembly.Memory[] = [];
let track = false;
function hookWasmMemory(): void {
  const Original = WebAssembly.Memory;
  class Tracked extends Original {
    constructor(d: WebAssembly.MemoryDescriptor) {
      super(d);
      if (track) tracked.push(this);
    }
  }
  (WebAssembly as { Memory: typeof WebAssembly.Memory }).Memory = Tracked;
}

/** Runs one stage: time, peak and base resident memory. */
async function measure<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; seconds: number; peak: number; base: number }> {
  const base = resetPeak();
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  return { value, seconds, peak: status("VmHWM"), base };
}

/** Tokens of a synthetic prompt (ids below moa-tiny's vocabulary, so any model takes them). */
function promptOf(length: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length }, () => rng.int(3, 4000));
}

/** The MoA plan at 50% density from one length's influence (the optimise step of makePlan). */
async function solvePlan(
  config: ModelConfig,
  inf: BlockInfluence,
  model: string,
  sink: number,
): Promise<Plan> {
  const T = inf.length, block = inf.block, NKV = config.numKvHeads;
  const rules = candidateRules([T], T);
  const problem = densityProblemFromRules({
    rules,
    losses: [ruleLosses(inf, rules, sink, "elastic")],
    profileLengths: [T],
    servingLength: T,
    sink,
    block,
    budget: 0.5,
    headsPerLayer: NKV,
    maxDistinctPerLayer: Math.min(2, rules.length),
  });
  const sol = await solveMilp(problem, 0, { gap: 1e-3, timeLimit: 60 });
  return planFromChoice(rules, sol.choice, NKV, {
    model,
    sink,
    block,
    density: 0.5,
    lengths: [T],
    servingLength: T,
  });
}

/** Prefill of `tokens` into `cache`, then `steps` greedy-free decode steps; seconds of each. */
async function prefillDecode(cpu: CpuModel, cache: KvCache, tokens: number[], steps: number) {
  let t0 = performance.now();
  await cpu.step([{ cache, tokens }], "last");
  const prefill = (performance.now() - t0) / 1000;
  t0 = performance.now();
  for (let i = 0; i < steps; i++) await cpu.step([{ cache, tokens: [tokens[i % tokens.length]!] }]);
  return { prefill, decode: (performance.now() - t0) / 1000 };
}

/** Bytes of a model folder's safetensors files. */
async function checkpointBytes(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".safetensors")) n += (await Deno.stat(join(dir, e.name))).size;
  }
  return n;
}

/**
 * Measures one (model, length) in this process; every row is printed as one JSON line as soon
 * as it is measured (the parent collects them).
 */
export async function runChild(spec: ChildSpec, emit: (row: ScaleRow) => void): Promise<void> {
  hookWasmMemory();
  const T = spec.length, has = (s: ScaleStage) => spec.stages.includes(s);
  const engine: Engine = await fastEngine();
  const base = {
    model: spec.model,
    shape: SCALE_MODELS[spec.model] ?? "moa-tiny",
    params: 0,
    checkpoint_bytes: await checkpointBytes(spec.dir),
    length: T,
    engine: engine.name,
  };
  const row = (
    stage: string,
    m: { seconds: number; peak: number; base: number },
    extra: Partial<ScaleRow> = {},
  ) =>
    emit({
      ...base,
      stage,
      seconds: m.seconds,
      per_token_s: "",
      gflops: "",
      peak_rss_bytes: m.peak,
      base_rss_bytes: m.base,
      wasm_bytes: "",
      note: "",
      ...extra,
    });
  const load = await measure(async () => {
    const model = await loadModel(spec.dir, { compact: true });
    const tok = await loadTokenizer(spec.dir);
    return { model, tok, cpu: new CpuModel(model, engine) };
  });
  const { model, tok, cpu } = load.value;
  base.params = parameterCount(model.config);
  row("load", load, {
    note: `model ${(modelBytes(model) / 2 ** 30).toFixed(2)} GiB in memory; peak / checkpoint ` +
      (load.peak / base.checkpoint_bytes).toFixed(2),
  });
  const ceiling = engine instanceof AutoEngine ? engine.large : engine;
  const mm = await measure(() => matmulGflops(ceiling, 1024));
  row("matmul", mm, { gflops: mm.value, note: `${ceiling.name}, 1024³` });

  let samples: CalibrationSample[] = [];
  if (has("calibrate") || has("profile") || has("solve") || has("decode")) {
    const cal = await measure(() =>
      buildCalibration(cpu, tok, { length: T, samples: 1, seed: 0, kind: "model" })
    );
    samples = cal.value;
    const response = samples[0]!.mask.reduce((a, m) => a + (m > 0 ? 1 : 0), 0);
    row("calibrate", cal, { note: `1 sample, ${response} response tokens` });
  }
  let inf: BlockInfluence | null = null;
  const needPlan = has("solve") || has("decode");
  if (has("profile") || needPlan) {
    const p = await measure(() =>
      profileInfluence(model, samples, spec.block, { engine, device: "cpu" })
    );
    inf = p.value;
    row("profile", p, { note: `layers on ${engine.name}, tiles of ${spec.block}` });
  }
  if (spec.jax) {
    track = true;
    await initJax("wasm");
    track = false;
    const p = await measure(() =>
      profileInfluence(model, samples, spec.block, { engine, device: "wasm" })
    );
    inf ??= p.value;
    const wasm = Math.max(0, ...tracked.map((m) => m.buffer.byteLength));
    row("profile_jax_wasm", p, { wasm_bytes: wasm, note: `jax-js on WebAssembly (4 GiB limit)` });
  }
  let plan: Plan | null = null;
  if (needPlan) {
    const s = await measure(() => solvePlan(model.config, inf!, spec.model, spec.block));
    plan = s.value;
    row("solve", s, { note: "one MILP at 50% density, ≤ 2 rules per layer" });
  }
  if (has("prefill") || has("decode")) {
    const tokens = promptOf(T, 1);
    const steps = has("decode") ? spec.decode : 0;
    const flops = prefillFlops(model.config, T);
    const dense = await measure(() =>
      prefillDecode(cpu, new DenseKvCache(model.config, T + steps + 1), tokens, steps)
    );
    row("prefill", { ...dense, seconds: dense.value.prefill }, {
      gflops: flops / dense.value.prefill / 1e9,
      note: `dense; ${(flops / dense.value.prefill / 1e9 / mm.value * 100).toFixed(0)}% of matmul`,
    });
    if (steps > 0) {
      row("decode_dense", { ...dense, seconds: dense.value.decode }, {
        per_token_s: dense.value.decode / steps,
        note: `${steps} steps from ${T} tokens (peak: prefill and decode)`,
      });
      const moa = await measure(() =>
        prefillDecode(cpu, new MoaKvCache(model.config, plan!, T + steps + 1), tokens, steps)
      );
      row("prefill_moa50", { ...moa, seconds: moa.value.prefill }, {
        gflops: flops / moa.value.prefill / 1e9,
        note: "MoA caches of the 50% plan (dense-equivalent GFLOP/s)",
      });
      row("decode_moa50", { ...moa, seconds: moa.value.decode }, {
        per_token_s: moa.value.decode / steps,
        note: `${(dense.value.decode / moa.value.decode).toFixed(2)}× dense`,
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// the parent: checkpoints, children, CSV, fits

/** Options of {@linkcode benchScale}. */
export interface ScaleOptions {
  models: ScaleModel[];
  lengths: number[];
  stages: ScaleStage[];
  decode: number;
  block: number;
  /** (model, length) pairs that also profile in jax-js on WebAssembly, as `1b@4096`. */
  jax: string[];
  /** Where random checkpoints live. */
  dir: string;
  /** The CSV to write (rewritten after every child). */
  csv: string;
  /** Keep the 8B checkpoint after the run (16 GB). */
  keep: boolean;
  /** Seconds a child may run. */
  timeout: number;
  log: (line: string) => void;
}

const TINY_DIR = new URL("../../data/models/moa-tiny", import.meta.url).pathname;

/** The model folder of a benchmark model, generating a random checkpoint on first use. */
async function folderOf(m: ScaleModel, root: string, log: (l: string) => void): Promise<string> {
  const shape = SCALE_MODELS[m];
  if (shape === null) return TINY_DIR;
  const dir = join(root, shape);
  try {
    await Deno.stat(join(dir, "config.json"));
    return dir;
  } catch { /* not there yet */ }
  log(`${m}: writing a random ${shape}-shaped BF16 checkpoint to ${dir} (time and memory only)`);
  const t0 = performance.now();
  await writeShapedCheckpoint(dir, shape);
  log(`${m}: written in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return dir;
}

/** Runs one child; its rows, or an error row when it failed (killed for memory, timed out). */
async function child(spec: ChildSpec, timeout: number, log: (l: string) => void) {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      JSON.stringify(spec),
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const proc = cmd.spawn();
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeout * 1000);
  const rows: ScaleRow[] = [];
  const decoder = new TextDecoder();
  let buffered = "";
  const reading = (async () => {
    for await (const chunk of proc.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        const r = JSON.parse(line) as ScaleRow;
        rows.push(r);
        log(
          `  ${r.model} ${r.length} ${r.stage}: ${Number(r.seconds).toFixed(2)} s, peak ` +
            `${(Number(r.peak_rss_bytes) / 2 ** 30).toFixed(2)} GiB`,
        );
      }
    }
  })();
  const errText = new Response(proc.stderr).text();
  const st = await proc.status;
  clearTimeout(timer);
  await reading;
  const err = await errText;
  return {
    rows,
    ok: st.success,
    why: st.success ? "" : `${st.signal ?? st.code}: ${err.slice(-400)}`,
  };
}

/** The least-squares slope of log y on log x (null with fewer than two distinct x). */
export function growthExponent(points: readonly [number, number][]): number | null {
  const p = points.filter(([x, y]) => x > 0 && y > 0);
  if (new Set(p.map(([x]) => x)).size < 2) return null;
  const lx = p.map(([x]) => Math.log(x)), ly = p.map(([, y]) => Math.log(y));
  const mx = lx.reduce((a, b) => a + b, 0) / p.length,
    my = ly.reduce((a, b) => a + b, 0) / p.length;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < p.length; i++) {
    sxy += (lx[i]! - mx) * (ly[i]! - my);
    sxx += (lx[i]! - mx) ** 2;
  }
  return sxy / sxx;
}

/** The exponent theory expects for a stage's time in T and in parameters, and why. */
export const EXPECTED: Record<string, { length: string; params: string }> = {
  load: { length: "0", params: "1 (bytes read)" },
  calibrate: { length: "1–2 (a prefill: linear in T, attention T²)", params: "1" },
  profile: { length: "2 (T² attention; 1 while the layers' products dominate)", params: "1" },
  profile_jax_wasm: { length: "2", params: "1" },
  solve: { length: "≈0 (rules and heads do not grow with T)", params: "≈0 (grows with heads)" },
  prefill: { length: "1–2 (linear in T, attention T²)", params: "1" },
  prefill_moa50: { length: "1–2", params: "1" },
  decode_dense: { length: "1 (reads T keys; weights add a T-free term)", params: "1" },
  decode_moa50: { length: "1 (reads S = T/2 keys)", params: "1" },
  "profile memory": { length: "1 (per query block: (NH, Bq, T))", params: "1" },
};

/** One fitted exponent. */
export interface ScaleFit {
  /** A stage, or "profile memory" (peak minus base resident memory of the profile). */
  what: string;
  /** "length" (at a fixed model) or "params" (at a fixed length). */
  over: "length" | "params";
  /** The model or the length held fixed. */
  at: string;
  exponent: number;
  expected: string;
  points: number;
}

/** Fits every stage's time (per token for decode) in T per model and in parameters per length. */
export function scaleFits(rows: readonly ScaleRow[]): ScaleFit[] {
  const out: ScaleFit[] = [];
  const y = (r: ScaleRow) => r.per_token_s !== "" ? Number(r.per_token_s) : Number(r.seconds);
  const stages = [...new Set(rows.map((r) => String(r.stage)))].filter((s) => s !== "matmul");
  const series: { what: string; rows: ScaleRow[]; value: (r: ScaleRow) => number }[] = stages.map(
    (s) => ({ what: s, rows: rows.filter((r) => r.stage === s), value: y }),
  );
  series.push({
    what: "profile memory",
    rows: rows.filter((r) => r.stage === "profile"),
    value: (r) => Number(r.peak_rss_bytes) - Number(r.base_rss_bytes),
  });
  for (const { what, rows: rs, value } of series) {
    for (const m of new Set(rs.map((r) => String(r.model)))) {
      const pts = rs.filter((r) => r.model === m).map((
        r,
      ): [number, number] => [Number(r.length), value(r)]);
      const e = growthExponent(pts);
      if (e !== null) {
        out.push({
          what,
          over: "length",
          at: m,
          exponent: e,
          expected: EXPECTED[what]?.length ?? "",
          points: pts.length,
        });
      }
    }
    for (const T of new Set(rs.map((r) => Number(r.length)))) {
      const pts = rs.filter((r) => Number(r.length) === T && r.model !== "tiny")
        .map((r): [number, number] => [Number(r.params), value(r)]);
      const e = growthExponent(pts);
      if (e !== null) {
        out.push({
          what,
          over: "params",
          at: String(T),
          exponent: e,
          expected: EXPECTED[what]?.params ?? "",
          points: pts.length,
        });
      }
    }
  }
  return out;
}

/** Writes the rows and their fits (`<csv>` and `<csv without .csv>_fits.csv`). */
async function writeCsv(path: string, rows: ScaleRow[]): Promise<void> {
  await Deno.mkdir(path.replace(/\/[^/]*$/, "") || ".", { recursive: true });
  await writeFileAtomic(path, csvFormat(rows, [...SCALE_COLUMNS]) + "\n");
  const fits = scaleFits(rows).map((f) => ({ ...f, exponent: f.exponent.toFixed(2) }));
  await writeFileAtomic(
    path.replace(/\.csv$/, "") + "_fits.csv",
    csvFormat(fits, ["what", "over", "at", "exponent", "expected", "points"]) + "\n",
  );
}

/**
 * Runs the benchmark: for each model (smallest first) and length, a child measures the stages;
 * the CSV is rewritten after each. A child that fails (out of memory, past its time) adds a row
 * with stage `failed` and the reason, and the longer lengths of that model are skipped.
 * @returns every row
 */
export async function benchScale(o: ScaleOptions): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = [];
  for (const m of o.models) {
    const dir = await folderOf(m, o.dir, o.log);
    for (const length of [...o.lengths].sort((a, b) => a - b)) {
      const spec: ChildSpec = {
        model: m,
        dir,
        length,
        stages: o.stages,
        decode: o.decode,
        block: o.block,
        jax: o.jax.includes(`${m}@${length}`),
      };
      o.log(
        `${m} at ${length} tokens: ${o.stages.join(", ")}${spec.jax ? ", profile in jax-js" : ""}`,
      );
      const r = await child(spec, o.timeout, o.log);
      rows.push(...r.rows);
      if (!r.ok) {
        o.log(
          `${m} at ${length}: the child failed (${
            r.why.split("\n").at(-1)
          }); longer lengths skipped`,
        );
        rows.push({
          model: m,
          shape: SCALE_MODELS[m] ?? "moa-tiny",
          params: r.rows[0]?.params ?? "",
          checkpoint_bytes: r.rows[0]?.checkpoint_bytes ?? "",
          length,
          stage: "failed",
          seconds: "",
          per_token_s: "",
          gflops: "",
          peak_rss_bytes: "",
          base_rss_bytes: "",
          wasm_bytes: "",
          engine: r.rows[0]?.engine ?? "",
          note: r.why.replace(/\s+/g, " ").slice(0, 300),
        });
        await writeCsv(o.csv, rows);
        break;
      }
      await writeCsv(o.csv, rows);
    }
    if (m === "8b" && !o.keep && dir !== TINY_DIR) {
      o.log(`8b: removing its 16 GB checkpoint (--keep keeps it)`);
      await Deno.remove(dir, { recursive: true });
    }
  }
  return rows;
}

/** The table printed at the end: one line per (model, length, stage). */
export function scaleTable(rows: readonly ScaleRow[]): string {
  const gib = (b: string | number) => b === "" ? "" : (Number(b) / 2 ** 30).toFixed(2);
  return textTable(rows.map((r) => ({
    model: r.model,
    T: r.length,
    stage: r.stage,
    seconds: r.seconds === "" ? "" : Number(r.seconds).toFixed(2),
    "s/token": r.per_token_s === "" ? "" : Number(r.per_token_s).toFixed(3),
    "GFLOP/s": r.gflops === "" ? "" : Number(r.gflops).toFixed(1),
    "peak GiB": gib(r.peak_rss_bytes),
    "wasm GiB": gib(r.wasm_bytes),
    note: r.note,
  })));
}

/** The fits as a table. */
export function fitsTable(fits: readonly ScaleFit[]): string {
  return textTable(fits.map((f) => ({
    stage: f.what,
    over: f.over,
    at: f.at,
    exponent: f.exponent.toFixed(2),
    expected: f.expected,
    points: f.points,
  })));
}

/** The targets, met or missed, from the rows. */
export function scaleTargets(rows: readonly ScaleRow[]): Record<string, string>[] {
  const find = (m: string, T: number, stage: string) =>
    rows.find((r) => r.model === m && Number(r.length) === T && r.stage === stage);
  const out: Record<string, string>[] = [];
  const verdict = (ok: boolean) => (ok ? "met" : "missed");
  const pf = rows.filter((r) => r.model === "0.5b" && r.stage === "prefill");
  for (const r of pf) {
    const mm = find("0.5b", Number(r.length), "matmul");
    if (!mm) continue;
    const ratio = Number(r.gflops) / Number(mm.gflops);
    out.push({
      target: `CPU prefill at 0.5B, ${r.length} tokens ≥ 50% of the engine's matmul GFLOP/s`,
      measured: `${Number(r.gflops).toFixed(1)} / ${Number(mm.gflops).toFixed(1)} = ${
        (ratio * 100).toFixed(0)
      }%`,
      verdict: verdict(ratio >= 0.5),
    });
  }
  const d = find("0.5b", 8192, "decode_dense"), s = find("0.5b", 8192, "decode_moa50");
  if (d && s) {
    const ratio = Number(d.per_token_s) / Number(s.per_token_s);
    out.push({
      target: "MoA 50% decode ≥ 1.6× dense at 8k on 0.5B",
      measured: `${ratio.toFixed(2)}×`,
      verdict: verdict(ratio >= 1.6),
    });
  }
  const j = find("1b", 4096, "profile_jax_wasm") ?? find("1b", 4096, "profile");
  if (j) {
    const bytes = j.wasm_bytes !== ""
      ? Number(j.wasm_bytes)
      : Number(j.peak_rss_bytes) - Number(j.base_rss_bytes);
    out.push({
      target: `profile peak memory at 4k on 1B ≤ 4 GiB (${
        j.stage === "profile" ? "beyond the model, CPU engine" : "jax-js WebAssembly memory"
      })`,
      measured: `${(bytes / 2 ** 30).toFixed(2)} GiB`,
      verdict: verdict(bytes <= 4 * 2 ** 30),
    });
  }
  return out;
}

if (import.meta.main) {
  const spec = JSON.parse(Deno.args[0] ?? "null") as ChildSpec | null;
  if (spec === null) throw new InputError("scale.ts: run it through `deno task bench scale`");
  await runChild(spec, (r) => console.log(JSON.stringify(r)));
  Deno.exit(0);
}

/** Checks a list of names against the known ones (an InputError naming the option). */
export function namesOf<T extends string>(flag: string, value: string, known: readonly T[]): T[] {
  const names = value.split(",").filter((s) => s !== "");
  for (const n of names) {
    if (!(known as readonly string[]).includes(n)) {
      throw new InputError(`--${flag}: expected some of ${known.join(", ")}, got '${n}'`);
    }
  }
  if (names.length === 0) throw new InputError(`--${flag}: expected at least one name`);
  return names as T[];
}
