/**
 * The moa-tiny trainer: AdamW with a cosine schedule and gradient clipping over a curriculum of
 * phases, deterministic from a seed, with atomic checkpoints that resume exactly, a loss curve
 * in CSV, and periodic held-out LongEval evaluation with the CPU runtime.
 *
 * Master weights live in float32 arrays on the JavaScript side (one `Model`); each step uploads
 * them to jax-js, takes `lossAndGrad`, and applies the optimizer in TypeScript. For a model of a
 * few million parameters the copies cost milliseconds against a step of about a second.
 *
 * @module
 */
import { generateCases, generateCasesByLines, type LongEvalCase } from "../longeval/longeval.ts";
import { evalKey, loadTrainKeySampler, type TrainKeySampler } from "../longeval/keys.ts";
import { HELDOUT_WORDS } from "../longeval/words.ts";
import { buildMoaTokenizer } from "../tokenizer/bpe.ts";
import {
  type Example,
  loadBrownCorpus,
  MIX_KINDS,
  type MixConfig,
  type MixKind,
  MixStream,
} from "./mix.ts";
import { type Phase, phaseAt, phaseLrFactor, totalSteps, type TrainConfig } from "./config.ts";
import { writeFileAtomic } from "../../runtime/atomic.ts";
import { saveModel } from "../../runtime/hf.ts";
import type { Model, ModelConfig } from "../../runtime/model.ts";
import { randomModel, tinyConfig } from "../../runtime/random_model.ts";
import { encodeSafetensors, parseSafetensors, toFloat32 } from "../../runtime/safetensors.ts";
import { type TextTokenizer, tokenizerFromJson } from "../../runtime/tokenizer.ts";
import {
  type Batch,
  disposeParams,
  initJax,
  type JaxDevice,
  lossAndGrad,
  modelFromParams,
  paramsFromModel,
} from "../../runtime/autodiff/jax_model.ts";
import { CpuModel, forwardLogits } from "../../runtime/cpu/forward.ts";
import { argmax, logSoftmaxAt } from "../../runtime/cpu/ops.ts";
import { fastEngine } from "../../runtime/cpu/engine_auto.ts";
import { runLongEval } from "../benchmarks.ts";
import { GradPool } from "./grad_pool.ts";
import { cpuDecoder } from "../../runtime/decoder.ts";
import { hashOf, stableStringify } from "../../runtime/hash.ts";
import { InputError } from "../../runtime/errors.ts";
import { Rng } from "../../runtime/rng.ts";

/** One named weight array of a model, and whether weight decay applies to it. */
export interface NamedWeight {
  name: string;
  data: Float32Array;
  decay: boolean;
}

/** The weights of a model in a fixed order (HF names), matrices marked for weight decay. */
export function namedWeights(m: Model): NamedWeight[] {
  const w = m.weights;
  const out: NamedWeight[] = [{ name: "model.embed_tokens.weight", data: w.embed, decay: true }];
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}.`;
    out.push(
      { name: `${p}input_layernorm.weight`, data: l.inputNorm, decay: false },
      { name: `${p}self_attn.q_proj.weight`, data: l.wq, decay: true },
      { name: `${p}self_attn.k_proj.weight`, data: l.wk, decay: true },
      { name: `${p}self_attn.v_proj.weight`, data: l.wv, decay: true },
      { name: `${p}self_attn.o_proj.weight`, data: l.wo, decay: true },
      { name: `${p}post_attention_layernorm.weight`, data: l.postNorm, decay: false },
      { name: `${p}mlp.gate_proj.weight`, data: l.wGate, decay: true },
      { name: `${p}mlp.up_proj.weight`, data: l.wUp, decay: true },
      { name: `${p}mlp.down_proj.weight`, data: l.wDown, decay: true },
    );
    if (l.bq) out.push({ name: `${p}self_attn.q_proj.bias`, data: l.bq, decay: false });
    if (l.bk) out.push({ name: `${p}self_attn.k_proj.bias`, data: l.bk, decay: false });
    if (l.bv) out.push({ name: `${p}self_attn.v_proj.bias`, data: l.bv, decay: false });
  });
  out.push({ name: "model.norm.weight", data: w.finalNorm, decay: false });
  if (w.lmHead !== w.embed) out.push({ name: "lm_head.weight", data: w.lmHead, decay: true });
  return out;
}

/** The model config a recipe describes, for a tokenizer of `vocab` entries. */
export function modelConfigOf(c: TrainConfig, vocab: number): ModelConfig {
  const m = c.model;
  return tinyConfig({
    vocabSize: Math.ceil(vocab / 64) * 64,
    hiddenSize: m.hidden,
    intermediateSize: m.intermediate,
    numLayers: m.layers,
    numHeads: m.heads,
    numKvHeads: m.kvHeads,
    headDim: m.hidden / m.heads,
    maxPositionEmbeddings: m.maxPositions,
    ropeTheta: m.ropeTheta,
    bosTokenId: 1,
    eosTokenIds: [2],
    tieWordEmbeddings: m.tieEmbeddings === true,
  });
}

/**
 * Initial weights: N(0, 0.02) everywhere (GPT-2), embeddings included, output
 * projections (o_proj, down_proj) scaled by 1/sqrt(2L) so the residual stream starts near the
 * embeddings, norms at 1.
 *
 * Measured against fan-in init (N(0, 1/fan_in) projections) on the `repeat` mix with variable
 * spans (2 layers, C = 64, alphabet 252, T = 64, B = 32, lr 3e-3): this init copied perfectly by
 * step 300 (loss 0.20), fan-in init was still at loss 1.59 at step 1000.
 */
export function initialModel(config: ModelConfig, seed: number): Model {
  const m = randomModel(config, seed);
  const s = 1 / Math.sqrt(2 * config.numLayers);
  // randomModel draws embeddings from N(0, 1): scale them to N(0, 0.02) (tied or not)
  for (let i = 0; i < m.weights.embed.length; i++) m.weights.embed[i]! *= 0.02;
  for (const l of m.weights.layers) {
    l.inputNorm.fill(1);
    l.postNorm.fill(1);
    for (let i = 0; i < l.wo.length; i++) l.wo[i]! *= s;
    for (let i = 0; i < l.wDown.length; i++) l.wDown[i]! *= s;
  }
  m.weights.finalNorm.fill(1);
  return m;
}

/** AdamW state: first and second moments per weight, and the step count. */
export interface AdamState {
  m: Float32Array[];
  v: Float32Array[];
  step: number;
}

/**
 * `lossAndGrad` on a model's float32 weights: the batch's masked mean loss and one gradient
 * array per weight, in {@link namedWeights} order (the optimizer's and the checkpoints' order).
 * The trainer's step in one thread, and each gradient worker's part (grad_worker.ts).
 */
export async function namedLossAndGrad(
  config: ModelConfig,
  model: Model,
  batch: Batch,
  B: number,
  T: number,
): Promise<{ loss: number; grads: Float32Array[] }> {
  const params = paramsFromModel(model);
  const r = await lossAndGrad(config, params, batch, B, T);
  disposeParams(params);
  const grads = namedWeights(await modelFromParams(config, r.grads)).map((w) => w.data);
  disposeParams(r.grads);
  return { loss: r.loss, grads };
}

/** Learning rate at `step` (0-based): linear warm-up, then cosine decay to minRatio·peak. */
export function cosineLr(
  step: number,
  peak: number,
  warmup: number,
  total: number,
  minRatio: number,
): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return peak * (minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

/**
 * The recipe's learning rate at `step` (0-based), before the phase's factor: {@link cosineLr}
 * over the cycle that contains `step` (cycles start at 0 and at each `optimizer.restarts`; a
 * restarted cycle warms up over its `optimizer.restartWarmups` entry, default `warmup`).
 */
export function scheduleLr(cfg: TrainConfig, step: number): number {
  const o = cfg.optimizer;
  const starts = [0, ...(o.restarts ?? [])];
  let c = starts.length - 1;
  while (starts[c]! > step) c--;
  const start = starts[c]!, end = starts[c + 1] ?? totalSteps(cfg);
  const warmup = c > 0 ? o.restartWarmups?.[c - 1] ?? o.warmup : o.warmup;
  return cosineLr(step - start, o.lr, warmup, end - start, o.minLrRatio);
}

/**
 * Scales gradients in place so their global L2 norm is at most `maxNorm`.
 * @returns the norm before clipping
 */
export function clipGlobalNorm(grads: Float32Array[], maxNorm: number): number {
  let ss = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) ss += g[i]! * g[i]!;
  const norm = Math.sqrt(ss);
  if (norm > maxNorm) {
    const s = maxNorm / (norm + 1e-12);
    for (const g of grads) for (let i = 0; i < g.length; i++) g[i]! *= s;
  }
  return norm;
}

/**
 * One AdamW step in place (decoupled weight decay on the weights marked `decay`, bias-corrected
 * moments).
 */
export function adamwStep(
  weights: NamedWeight[],
  grads: Float32Array[],
  state: AdamState,
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number },
): void {
  state.step++;
  const c1 = 1 - Math.pow(o.beta1, state.step), c2 = 1 - Math.pow(o.beta2, state.step);
  weights.forEach((w, k) => {
    const p = w.data, g = grads[k]!, m = state.m[k]!, v = state.v[k]!;
    const decay = w.decay ? 1 - o.lr * o.weightDecay : 1;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]!;
      const mi = (m[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi);
      const vi = (v[i] = o.beta2 * v[i]! + (1 - o.beta2) * gi * gi);
      p[i] = p[i]! * decay - (o.lr * (mi / c1)) / (Math.sqrt(vi / c2) + o.eps);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// checkpoints

/** What `latest.json` in the output folder records. */
interface CheckpointInfo {
  step: number;
  file: string;
  /** Hash of what a resumed run must share: seed, model shape, tokenizer, loss weights. */
  recipe: string;
  /** The curriculum of the steps done: each phase's settings and how many of its steps ran. */
  history?: PhaseDone[];
  tokens: number;
  seconds: number;
}

async function saveCheckpoint(
  out: string,
  weights: NamedWeight[],
  state: AdamState,
  info: Omit<CheckpointInfo, "file">,
  keep: ReadonlySet<number>,
): Promise<void> {
  const tensors = weights.flatMap((w, k) => [
    { name: `param.${w.name}`, dtype: "F32" as const, shape: [w.data.length], data: w.data },
    { name: `m.${w.name}`, dtype: "F32" as const, shape: [w.data.length], data: state.m[k]! },
    { name: `v.${w.name}`, dtype: "F32" as const, shape: [w.data.length], data: state.v[k]! },
  ]);
  const file = `checkpoint-${String(info.step).padStart(6, "0")}.safetensors`;
  await writeFileAtomic(`${out}/${file}`, encodeSafetensors(tensors, { step: String(info.step) }));
  let previous: CheckpointInfo | null = null;
  try {
    previous = JSON.parse(await Deno.readTextFile(`${out}/latest.json`));
  } catch { /* first checkpoint */ }
  const text = JSON.stringify({ ...info, file }, null, 2) + "\n";
  await writeFileAtomic(`${out}/${infoFile(info.step)}`, text); // for --rewind
  await writeFileAtomic(`${out}/latest.json`, text);
  if (previous && previous.file !== file && !keep.has(previous.step)) {
    await Deno.remove(`${out}/${previous.file}`).catch(() => {});
    await Deno.remove(`${out}/${infoFile(previous.step)}`).catch(() => {});
  }
}

function infoFile(step: number): string {
  return `checkpoint-${String(step).padStart(6, "0")}.json`;
}

/**
 * Makes the kept checkpoint of `step` (the end of a phase, or the latest) the one training resumes
 * from, and drops the evaluation rows past it; the loss curve is trimmed when training resumes.
 * Later checkpoints stay until training overwrites them. Use it to redo later phases after
 * editing them in the recipe.
 * @throws InputError when no checkpoint of that step is kept in `out`
 */
export async function rewindTo(out: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${out}/${infoFile(step)}`);
  } catch {
    const kept = [...Deno.readDirSync(out)].map((e) => /^checkpoint-(\d+)\.json$/.exec(e.name))
      .filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
    throw new InputError(
      `${out}: no kept checkpoint of step ${step}; kept: ${kept.join(", ") || "none"}`,
    );
  }
  for (const csv of ["eval.csv", "kinds.csv"]) {
    let rows: string[];
    try {
      rows = (await Deno.readTextFile(`${out}/${csv}`)).trimEnd().split("\n");
    } catch {
      continue;
    }
    const keep = rows.filter((r, i) => i === 0 || Number(r.split(",")[0]) <= step);
    await writeFileAtomic(`${out}/${csv}`, keep.join("\n") + "\n");
  }
  await writeFileAtomic(`${out}/latest.json`, text);
}

/** A phase's settings and the number of its steps already run. */
interface PhaseDone {
  T: number;
  B: number;
  lines: [number, number];
  mix: Partial<Phase["mix"]>;
  repeatVocab?: number;
  answer?: "echo";
  valueWeight?: number;
  done: number;
}

/** The phases that the first `steps` steps of a recipe run through. */
export function phaseHistory(cfg: TrainConfig, steps: number): PhaseDone[] {
  const out: PhaseDone[] = [];
  let left = steps;
  for (const p of cfg.phases) {
    if (left <= 0) break;
    const done = Math.min(left, p.steps);
    // zero `repeat` and `recall` weights are left out, so histories written before those kinds
    // existed match
    const mix: Partial<Phase["mix"]> = { ...p.mix };
    if (!mix.repeat) delete mix.repeat;
    if (!mix.recall) delete mix.recall;
    out.push({
      T: p.T,
      B: p.B,
      lines: p.lines,
      mix,
      ...(p.repeatVocab ? { repeatVocab: p.repeatVocab } : {}),
      ...(p.answer === "echo" ? { answer: p.answer } : {}),
      ...(p.valueWeight !== undefined ? { valueWeight: p.valueWeight } : {}),
      done,
    });
    left -= done;
  }
  return out;
}

/**
 * The hash that a resumed run must match: everything that shapes the weights except the
 * curriculum of steps not yet run and the optimizer's settings (so a recipe can be extended or
 * its later phases amended without starting over).
 */
export function recipeKey(cfg: TrainConfig): Promise<string> {
  return hashOf({ seed: cfg.seed, model: cfg.model, tokenizer: cfg.tokenizer, loss: cfg.loss });
}

async function loadCheckpoint(
  out: string,
  cfg: TrainConfig,
  weights: NamedWeight[],
  state: AdamState,
): Promise<CheckpointInfo | null> {
  let info: CheckpointInfo;
  try {
    info = JSON.parse(await Deno.readTextFile(`${out}/latest.json`));
  } catch {
    return null;
  }
  const where = `${out}/latest.json`;
  if (info.history === undefined) {
    // checkpoints written before the curriculum was recorded: the whole recipe must match
    if (info.recipe !== await hashOf(cfg)) {
      throw new InputError(`${where}: checkpoint of another recipe; use another --out`);
    }
  } else {
    if (info.recipe !== await recipeKey(cfg)) {
      throw new InputError(
        `${where}: checkpoint of another seed, model shape, tokenizer or loss weights; use another --out`,
      );
    }
    if (stableStringify(info.history) !== stableStringify(phaseHistory(cfg, info.step))) {
      throw new InputError(
        `${where}: the recipe's phases for the ${info.step} steps already run differ from those the checkpoint ran; ` +
          `only phases not yet reached may change`,
      );
    }
  }
  const file = `${out}/${info.file}`;
  const tensors = parseSafetensors(await Deno.readFile(file), file);
  weights.forEach((w, k) => {
    for (
      const [prefix, target] of [["param", w.data], ["m", state.m[k]!], ["v", state.v[k]!]] as const
    ) {
      const t = tensors.get(`${prefix}.${w.name}`);
      if (!t) throw new Error(`${file}: missing tensor ${prefix}.${w.name}`);
      target.set(toFloat32(t, file, `${prefix}.${w.name}`));
    }
  });
  state.step = info.step;
  return info;
}

// ---------------------------------------------------------------------------------------------
// the loop

/** Options of `train`. */
export interface TrainOptions {
  /** Output folder: tokenizer, checkpoints, loss.csv, eval.csv, model/ (HF layout). */
  out: string;
  /** Stop after this many steps of this invocation (to run the recipe in pieces). */
  maxSteps?: number;
  /**
   * Gradient workers (grad_pool.ts): steps whose batch holds several sequences share them out,
   * one jax-js instance and one core per worker. The same run up to float32 summation order.
   * @default 1 (gradients in this thread)
   */
  workers?: number;
  /**
   * The jax-js device the gradients run on: `"wasm"` (CPU) or `"webgpu"` (a GPU adapter, e.g.
   * an H200 through Vulkan). The optimizer, data and evaluation stay on the CPU either way.
   * With `workers` > 1 the workers run on wasm.
   * @default "wasm"
   */
  device?: JaxDevice;
  /**
   * The most bytes a whole-model gradient program may take before a step goes layer by layer
   * (`InitOptions.programBytes` in runtime/autodiff/jax_model.ts). Either way computes the same
   * gradient; on a large GPU the one program is faster.
   * @default 3 GiB (wasm's 4 GiB space)
   */
  programBytes?: number;
  /**
   * Stop (after a checkpoint) at the first step that ends past this many seconds of this
   * invocation's wall time, so a run on a lent machine ends inside its lease; rerunning resumes.
   */
  maxSeconds?: number;
  /**
   * Run the recipe's evaluations (`evalEvery` and at the end: eval.csv, kinds.csv), on the
   * CPU. Off on a lent GPU machine, whose time is better spent on gradients; `deno task quality`
   * scores the exported model afterwards.
   * @default true
   */
  evaluate?: boolean;
  /** Loads only this many Brown documents (tests). */
  brownDocuments?: number;
  /** Called after every step. */
  onStep?: (s: StepReport) => void;
  /** One-line messages. */
  log?: (line: string) => void;
}

/** What one training step reports. */
export interface StepReport {
  step: number;
  total: number;
  phase: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerS: number;
  tokens: number;
}

/** The result of `train`. */
export interface TrainResult {
  model: Model;
  tokenizer: TextTokenizer;
  steps: number;
  tokens: number;
  seconds: number;
  losses: number[];
  done: boolean;
}

/**
 * Trains (or resumes training) a model with a recipe, writing everything to `opts.out`. When the
 * last step is done, the model is saved in the Hugging Face layout to `out/model/`.
 */
export async function train(cfg: TrainConfig, opts: TrainOptions): Promise<TrainResult> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const recipe = await recipeKey(cfg);
  await Deno.mkdir(opts.out, { recursive: true });
  // tokenizer: trained once per recipe, kept in the output folder
  const tokFile = `${opts.out}/tokenizer.json`;
  let tokJson: Record<string, unknown>;
  try {
    tokJson = JSON.parse(await Deno.readTextFile(tokFile));
  } catch {
    log(`training a ${cfg.tokenizer.vocabSize}-entry byte-level BPE tokenizer…`);
    tokJson = await buildMoaTokenizer({
      vocabSize: cfg.tokenizer.vocabSize,
      ...(cfg.tokenizer.keys ? { keys: cfg.tokenizer.keys } : {}),
    });
    await writeFileAtomic(tokFile, JSON.stringify(tokJson));
  }
  const tokenizer = tokenizerFromJson(tokJson);
  const { config, model, weights, state } = freshRun(cfg, tokenizer);
  const resumed = await loadCheckpoint(opts.out, cfg, weights, state);
  let tokens = resumed?.tokens ?? 0;
  let seconds = resumed?.seconds ?? 0;
  if (resumed) {
    log(`resuming from step ${resumed.step} (${tokens} tokens, ${seconds.toFixed(0)} s so far)`);
  }
  const started = performance.now();
  const device = opts.device ?? "wasm";
  await initJax(device, opts.programBytes ? { programBytes: opts.programBytes } : {});
  if (device !== "wasm") log(`gradients on jax-js ${device}`);
  const corpus = await loadBrownCorpus(
    tokenizer,
    opts.brownDocuments === undefined ? {} : { documents: opts.brownDocuments },
  );
  const keys = cfg.phases.some((p) => p.keys === "varied") ? await loadTrainKeySampler() : null;
  const total = totalSteps(cfg);
  // the state at the end of every phase is kept (a later phase can then be redone from it)
  const phaseEnds = new Set<number>();
  cfg.phases.reduce((at, p) => (phaseEnds.add(at + p.steps), at + p.steps), 0);
  const stopAt = Math.min(total, state.step + (opts.maxSteps ?? Infinity));
  const losses: number[] = [];
  const lossCsv = `${opts.out}/loss.csv`;
  let csv = "";
  try {
    csv = await Deno.readTextFile(lossCsv);
  } catch {
    csv = "step,phase,T,B,loss,lr,grad_norm,tokens,seconds,tokens_per_s\n";
  }
  // drop rows past the checkpoint, so a resumed curve has no duplicates
  csv =
    csv.split("\n").filter((line, i) =>
      i === 0 || (line && Number(line.split(",")[0]) <= state.step)
    ).join("\n") + "\n";
  const workers = opts.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1) {
    throw new InputError(`workers: expected an integer ≥ 1, got ${workers}`);
  }
  if (workers > 1 && device !== "wasm") {
    throw new InputError(`workers: gradient workers run on wasm; got ${workers} with ${device}`);
  }
  // closed (its workers ended) however the loop exits
  using pool = workers > 1 ? new GradPool(workers) : null;
  while (state.step < stopAt) {
    const step = state.step;
    const { phase, index, within } = phaseAt(cfg, step);
    const batch = batchFor(tokenizer, corpus, keys, cfg, phase, step);
    const t0 = performance.now();
    const input = {
      tokens: batch.tokens,
      targets: batch.targets,
      mask: batch.weights,
      // contiguous positions are the default; passing them only when spread keeps the
      // recipes without `spread` on the program they were trained with
      ...(phase.spread !== undefined ? { positions: batch.positions } : {}),
    };
    let loss: number, g: Float32Array[];
    if (pool && phase.B > 1) {
      // data parallel: the batch's sequences shared out among the workers (grad_pool.ts)
      const w = weights.map((x) => x.data);
      ({ loss, grads: g } = await pool.lossAndGrad(config, w, input, phase.B, phase.T));
    } else {
      ({ loss, grads: g } = await namedLossAndGrad(config, model, input, phase.B, phase.T));
    }
    const gradNorm = clipGlobalNorm(g, cfg.optimizer.clip);
    const lr = scheduleLr(cfg, step) * phaseLrFactor(phase, within);
    adamwStep(weights, g, state, { ...cfg.optimizer, lr });
    const dt = (performance.now() - t0) / 1000;
    seconds += dt;
    tokens += phase.B * phase.T;
    losses.push(loss);
    const report = {
      step: state.step,
      total,
      phase: index,
      loss,
      lr,
      gradNorm,
      tokensPerS: (phase.B * phase.T) / dt,
      tokens,
    };
    opts.onStep?.(report);
    csv += [
      state.step,
      index,
      phase.T,
      phase.B,
      loss.toFixed(5),
      lr.toExponential(3),
      gradNorm.toFixed(4),
      tokens,
      seconds.toFixed(1),
      report.tokensPerS.toFixed(0),
    ].join(",") + "\n";
    const timeUp = opts.maxSeconds !== undefined &&
      (performance.now() - started) / 1000 > opts.maxSeconds;
    const last = state.step === stopAt || timeUp;
    if (state.step % cfg.checkpointEvery === 0 || last || phaseEnds.has(state.step)) {
      await writeFileAtomic(lossCsv, csv);
      await saveCheckpoint(opts.out, weights, state, {
        step: state.step,
        recipe,
        history: phaseHistory(cfg, state.step),
        tokens,
        seconds,
      }, phaseEnds);
    }
    if ((opts.evaluate ?? true) && (state.step % cfg.evalEvery === 0 || state.step === total)) {
      if (cfg.eval.cases > 0) await evaluate(model, tokenizer, cfg, state.step, opts.out, log);
      const phase = phaseAt(cfg, state.step - 1).phase;
      const kinds = await kindAccuracy(model, tokenizer, corpus, cfg, phase, KIND_EXAMPLES, keys);
      await appendCsv(
        `${opts.out}/kinds.csv`,
        "step,kind,T,scored,accuracy,nll,n",
        kinds.map((k) =>
          [state.step, k.kind, phase.T, k.scored, k.accuracy.toFixed(4), k.nll.toFixed(4), k.n]
            .join(",")
        ),
      );
      log(
        `step ${state.step}: teacher-forced accuracy at T = ${phase.T}: ` +
          kinds.map((k) => `${k.kind} ${k.scored} ${k.accuracy.toFixed(2)}`).join(", "),
      );
    }
    if (timeUp) {
      log(`stopping at step ${state.step}: past the ${opts.maxSeconds} s limit`);
      break;
    }
  }
  const done = state.step >= total;
  if (done) await writeHfFolder(`${opts.out}/model`, model, tokJson);

  return { model, tokenizer, steps: state.step, tokens, seconds, losses, done };
}

/** A recipe's initial model, its weights in checkpoint order, and zeroed optimizer state. */
function freshRun(cfg: TrainConfig, tokenizer: TextTokenizer) {
  const config = modelConfigOf(cfg, tokenizer.vocabSize);
  const model = initialModel(config, cfg.seed);
  const weights = namedWeights(model);
  const state: AdamState = {
    m: weights.map((w) => new Float32Array(w.data.length)),
    v: weights.map((w) => new Float32Array(w.data.length)),
    step: 0,
  };
  return { config, model, weights, state };
}

/** Writes a model and its tokenizer as a Hugging Face folder. */
async function writeHfFolder(
  dir: string,
  model: Model,
  tokJson: Record<string, unknown>,
): Promise<void> {
  await saveModel(dir, model);
  await writeFileAtomic(`${dir}/tokenizer.json`, JSON.stringify(tokJson));
  const cfg = {
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    model_max_length: model.config.maxPositionEmbeddings,
    clean_up_tokenization_spaces: false,
  };
  await writeFileAtomic(`${dir}/tokenizer_config.json`, JSON.stringify(cfg, null, 2) + "\n");
}

/**
 * Writes the weights of the latest checkpoint in `out` as a Hugging Face folder (to evaluate or
 * ship a model part-way through a recipe).
 * @returns the checkpoint's step
 * @throws InputError when `out` holds no checkpoint of this recipe
 */
export async function exportCheckpoint(
  cfg: TrainConfig,
  out: string,
  dir: string,
): Promise<number> {
  const { model, tokJson, step } = await latestCheckpoint(cfg, out);
  await writeHfFolder(dir, model, tokJson);
  return step;
}

/**
 * Scores the latest checkpoint in `out` on fresh examples of every kind of a phase (default: the
 * phase its last step was in), teacher-forced ({@link kindAccuracy}).
 */
export async function probeCheckpoint(
  cfg: TrainConfig,
  out: string,
  phaseIndex?: number,
  examples = KIND_EXAMPLES,
): Promise<{ step: number; phase: number; T: number; kinds: KindAccuracy[] }> {
  const { model, tokJson, step } = await latestCheckpoint(cfg, out);
  const tokenizer = tokenizerFromJson(tokJson);
  const phase = phaseIndex ?? phaseAt(cfg, Math.max(0, step - 1)).index;
  if (!(phase >= 0 && phase < cfg.phases.length)) {
    throw new InputError(
      `phase: expected 0 … ${cfg.phases.length - 1} (the recipe's phases), got ${phase}`,
    );
  }
  const corpus = await loadBrownCorpus(tokenizer);
  const p = cfg.phases[phase]!;
  const kinds = await kindAccuracy(model, tokenizer, corpus, cfg, p, examples);
  return { step, phase, T: p.T, kinds };
}

async function latestCheckpoint(cfg: TrainConfig, out: string) {
  let tokJson: Record<string, unknown>;
  try {
    tokJson = JSON.parse(await Deno.readTextFile(`${out}/tokenizer.json`));
  } catch {
    throw new InputError(`${out}: no tokenizer.json; has training started there?`);
  }
  const { model, weights, state } = freshRun(cfg, tokenizerFromJson(tokJson));
  const info = await loadCheckpoint(out, cfg, weights, state);
  if (!info) throw new InputError(`${out}: no checkpoint (latest.json) of this recipe`);
  return { model, tokJson, step: info.step };
}

/** The batch of a step: a stream seeded by (seed, step), so a resumed run sees the same data. */
function batchFor(
  tokenizer: TextTokenizer,
  corpus: Awaited<ReturnType<typeof loadBrownCorpus>>,
  keys: TrainKeySampler | null,
  cfg: TrainConfig,
  phase: Phase,
  step: number,
) {
  const seed = new Rng(cfg.seed * 1_000_003 + step).int(0, 2 ** 31 - 1);
  const stream = new MixStream(tokenizer, mixConfigOf(cfg, phase), seed, corpus, keys);
  return stream.nextBatch(phase.B);
}

/** The data mix of a phase. */
function mixConfigOf(cfg: TrainConfig, phase: Phase): MixConfig {
  return {
    T: phase.T,
    kinds: phase.mix,
    lines: phase.lines,
    ...(phase.repeatVocab ? { repeatVocab: phase.repeatVocab } : {}),
    ...(phase.answer ? { answer: phase.answer } : {}),
    ...(phase.valueWeight !== undefined ? { valueWeight: phase.valueWeight } : {}),
    ...(phase.keys ? { keys: phase.keys } : {}),
    ...(phase.spread !== undefined ? { spread: phase.spread } : {}),
    ...(phase.spreadShare !== undefined ? { spreadShare: phase.spreadShare } : {}),
    contextWeight: cfg.loss.contextWeight,
    answerWeight: cfg.loss.answerWeight,
  };
}

/** Examples per kind that {@link kindAccuracy} scores at each evaluation. */
const KIND_EXAMPLES = 8;

/** Teacher-forced accuracy of one kind of training example ({@link kindAccuracy}). */
export interface KindAccuracy {
  kind: MixKind;
  /**
   * which targets were scored: `"answers"` (the loss-weighted answer tokens: copies of `repeat`,
   * the sentence of `copy`), `"values"` (the digits of LongEval answers), `"first"` (the first
   * digit of each LongEval answer: the retrieval itself, which greedy decoding must get right
   * unaided), or `"text"` (every token of `brown`)
   */
  scored: Scored;
  /** fraction of scored targets that are the argmax */
  accuracy: number;
  /** mean negative log-likelihood of the scored targets (nats) */
  nll: number;
  /** scored targets */
  n: number;
}

/** Which targets of an example {@link kindAccuracy} scores. */
export type Scored = "answers" | "values" | "first" | "text";

/**
 * How well a model does each kind of example of a phase, teacher-forced: fresh examples from a
 * stream seeded apart from training's, scored by the CPU runtime. It shows whether a phase does
 * its job (copies for `repeat`, retrieved digits for LongEval) long before greedy LongEval
 * accuracy moves.
 */
export async function kindAccuracy(
  model: Model,
  tokenizer: TextTokenizer,
  corpus: Awaited<ReturnType<typeof loadBrownCorpus>>,
  cfg: TrainConfig,
  phase: Phase,
  examples: number,
  keys: TrainKeySampler | null = null,
): Promise<KindAccuracy[]> {
  const engine = await fastEngine();
  const V = model.config.vocabSize;
  const isDigit = (id: number) => /^[0-9]$/.test(tokenizer.decode([id]));
  // scored at contiguous positions (the CPU forward's), so without `spread`
  const { spread: _spread, spreadShare: _share, ...mix } = mixConfigOf(cfg, phase);
  if (mix.keys === "varied" && !keys) keys = await loadTrainKeySampler();
  const answerWeights = [mix.answerWeight, mix.valueWeight ?? mix.answerWeight];
  const out: KindAccuracy[] = [];
  for (const kind of MIX_KINDS) {
    if (!(phase.mix[kind] > 0)) continue;
    // only this kind (`repeat` and `recall` default to 0)
    const kinds = { brown: 0, longeval: 0, multiQuery: 0, copy: 0, [kind]: 1 };
    const stream = new MixStream(
      tokenizer,
      { ...mix, kinds },
      0x5eed ^ (cfg.seed * 7919),
      corpus,
      keys,
    );
    const scoredKinds = scoredTargets(kind);
    const tally = scoredKinds.map(() => ({ hit: 0, n: 0, nll: 0 }));
    for (let e = 0; e < examples; e++) {
      const ex = stream.next();
      const logits = await forwardLogits(model, ex.tokens, engine);
      scoredKinds.forEach((scored, i) => {
        const c = tally[i]!;
        for (const t of scoredPositions(ex, scored, answerWeights, isDigit)) {
          const off = t * V, target = ex.targets[t]!;
          c.nll -= logSoftmaxAt(logits, off, V, target);
          if (argmax(logits, off, V) === target) c.hit++;
          c.n++;
        }
      });
    }
    scoredKinds.forEach((scored, i) => {
      const { hit, n, nll } = tally[i]!;
      out.push({ kind, scored, accuracy: n ? hit / n : 0, nll: n ? nll / n : 0, n });
    });
  }
  return out;
}

/** What {@link kindAccuracy} scores for a kind of example (LongEval: all digits, then first). */
export function scoredTargets(kind: MixKind): Scored[] {
  return kind === "brown"
    ? ["text"]
    : kind === "longeval" || kind === "multiQuery" || kind === "recall"
    ? ["values", "first"]
    : ["answers"];
}

/**
 * The positions of an example whose targets {@link kindAccuracy} scores: every weighted one
 * (`"text"`), those weighted as answers (`"answers"`: a weight in `answerWeights`), answer
 * targets that are digits (`"values"`), or only the first of each run of them (`"first"`).
 */
export function scoredPositions(
  ex: Example,
  scored: Scored,
  answerWeights: readonly number[],
  isDigit: (id: number) => boolean,
): number[] {
  const out: number[] = [];
  for (let t = 0; t < ex.targets.length; t++) {
    const w = ex.weights[t]!;
    if (w <= 0) continue;
    if (scored !== "text" && !answerWeights.includes(w)) continue;
    if (scored === "values" || scored === "first") {
      if (!isDigit(ex.targets[t]!)) continue;
      if (scored === "first" && t > 0 && isDigit(ex.targets[t - 1]!)) continue;
    }
    out.push(t);
  }
  return out;
}

/** Appends rows to a CSV file (header first when the file is new), atomically. */
async function appendCsv(path: string, header: string, rows: string[]): Promise<void> {
  let csv = `${header}\n`;
  try {
    csv = await Deno.readTextFile(path);
  } catch { /* new file */ }
  await writeFileAtomic(path, csv + rows.map((r) => `${r}\n`).join(""));
}

/** Held-out-vocabulary LongEval accuracy at the recipe's eval lengths, appended to eval.csv. */
async function evaluate(
  model: Model,
  tokenizer: TextTokenizer,
  cfg: TrainConfig,
  step: number,
  out: string,
  log: (l: string) => void,
) {
  const runner = new CpuModel(model, await fastEngine());
  const newline = tokenizer.encode("\n");
  const session = {
    dir: out,
    fingerprint: "training",
    runner,
    tokenizer,
    bos: 1,
    stopTokens: [2, ...(newline.length === 1 ? newline : [])],
    backend: "cpu" as const,
    gpu: null,
    device: "cpu",
  };
  const parts: string[] = [];
  const rows: string[] = [];
  const countTokens = (t: string) => tokenizer.encode(t).length + 1;
  const score = async (cases: LongEvalCase[]) => {
    const metrics = await runLongEval(
      session,
      cases,
      cpuDecoder(runner, (n) => runner.newCache(n)),
      () => {},
    );
    return metrics.find((m) => m.metric === "accuracy")!.value;
  };
  if (cfg.eval.lines) {
    // record-line levels, with every evaluation key source (disjoint from training's keys)
    for (const lines of cfg.eval.lines) {
      for (const source of cfg.eval.keys ?? ["words"]) {
        const cases = generateCasesByLines({
          count: cfg.eval.cases,
          lines,
          seed: 12345,
          countTokens,
          drawKey: (r) => evalKey(source, r),
        });
        const acc = await score(cases);
        const tokens = cases.reduce((a, c) => a + c.tokens!, 0) / cases.length;
        parts.push(`${lines} lines ${source} ${acc.toFixed(2)}`);
        rows.push(`${step},${Math.round(tokens)},${acc},${cases.length},${lines},${source}`);
      }
    }
  } else {
    for (const length of cfg.eval.lengths) {
      const cases = generateCases({
        count: cfg.eval.cases,
        targetLength: length,
        seed: 12345,
        countTokens,
        words: HELDOUT_WORDS,
      });
      const acc = await score(cases);
      parts.push(`${length}: ${acc.toFixed(2)}`);
      rows.push(`${step},${length},${acc},${cases.length},,heldout-words`);
    }
  }
  await appendCsv(`${out}/eval.csv`, "step,length,accuracy,n,lines,keys", rows);
  log(`step ${step}: held-out LongEval accuracy ${parts.join(", ")}`);
}
