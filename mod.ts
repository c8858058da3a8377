/**
 * moa: Mixture of Sparse Attention (MoA, arXiv 2406.14909) for LLaMA-family models, in Deno.
 *
 * The pipeline: load a Hugging Face model folder → run it on the CPU (or WebGPU) → profile how
 * much each attention head needs distant tokens → solve for per-head sparse-attention spans
 * under a density budget → evaluate retrieval (LongEval), perplexity, memory and speed against
 * dense and the baselines. Experiments are declared in YAML/JSON files and run with
 * `deno task experiment <file>`, which writes tidy CSV under `results/`.
 *
 * @example Run a model folder on the CPU
 * ```ts
 * import { CpuModel, fastEngine, generateGreedy, loadModel, loadTokenizer } from "./mod.ts";
 * const dir = new URL("./data/models/moa-tiny", import.meta.url).pathname;
 * const model = await loadModel(dir);
 * const tokenizer = await loadTokenizer(dir);
 * const runner = new CpuModel(model, await fastEngine());
 * const [out] = await generateGreedy(runner, [tokenizer.encode("line 1: ")], { maxNewTokens: 4 });
 * console.log(tokenizer.decode(out!));
 * ```
 *
 * @example Run an experiment file
 * ```ts
 * import { loadExperiment, runExperiment } from "./mod.ts";
 * const exp = await loadExperiment(new URL("./experiments/default.yaml", import.meta.url).pathname);
 * const out = await Deno.makeTempDir();
 * const { rows } = await runExperiment(exp, { out, dryRun: true });
 * console.log(rows.length); // 0: a dry run lists the cells and writes nothing
 * ```
 *
 * @example Make a MoA plan for a density (the chain behind `deno task plan`)
 * ```ts ignore
 * import { CpuModel, fastEngine, loadModel, loadTokenizer, makePlan, writePlan } from "./mod.ts";
 * const dir = new URL("./data/models/moa-tiny", import.meta.url).pathname;
 * const runner = new CpuModel(await loadModel(dir), await fastEngine());
 * const { plan } = await makePlan(runner, await loadTokenizer(dir), "moa-tiny", {
 *   density: 0.5, lengths: [512, 1024], servingLength: 2048, samples: 4, block: 32, sink: 32, seed: 0,
 * });
 * await writePlan("plan-d0.5.json", plan); // alphas/betas per layer and kv head, as the reference
 * ```
 *
 * @module
 */

// model formats
export type {
  LayerWeights,
  Model,
  ModelConfig,
  ModelType,
  ModelWeights,
  RopeScaling,
} from "./runtime/model.ts";
export { loadModel, saveModel, type SaveOptions } from "./runtime/hf.ts";
export { configToJson, parseConfig } from "./runtime/config.ts";
export {
  encodeSafetensors,
  parseSafetensors,
  type TensorView,
  toFloat32,
} from "./runtime/safetensors.ts";
export {
  byteLevelTokenizerJson,
  loadTokenizer,
  type TextTokenizer,
  tokenizerFromJson,
} from "./runtime/tokenizer.ts";
export { randomModel, tinyConfig } from "./runtime/random_model.ts";
export { InputError } from "./runtime/errors.ts";
export { Rng } from "./runtime/rng.ts";

// CPU execution
export {
  CpuModel,
  forwardLogits,
  type LogitsWanted,
  type StepInput,
} from "./runtime/cpu/forward.ts";
export { DenseKvCache, type KvCache } from "./runtime/cpu/kv_cache.ts";
export {
  generateGreedy,
  type GenerateOptions,
  perplexity,
  tokenLogProbs,
} from "./runtime/cpu/generate.ts";
export {
  AutoEngine,
  type Engine,
  fastEngine,
  JaxEngine,
  OrtEngine,
  TsEngine,
  tsEngine,
} from "./runtime/cpu/engine.ts";

// the MoA chain: calibrate → profile → optimise → validate → plan
export { buildCalibration, type CalibrationKind } from "./data/calibration.ts";
export {
  type BlockInfluence,
  type CalibrationSample,
  profileInfluence,
  ruleLosses,
} from "./solver/profile.ts";
export {
  type BandMode,
  candidateRules,
  droppedBlocks,
  type Rule,
  ruleDensity,
  ruleKeeps,
} from "./solver/rules.ts";
export {
  densityProblemFromRules,
  paretoSet,
  type Problem,
  type Solution,
  solveMilp,
} from "./solver/milp.ts";
export {
  makePlan,
  type PlanResult,
  type PlanSettings,
  type ProfileCache,
  validationLoss,
} from "./solver/pipeline.ts";
export {
  exportReferencePlan,
  importReferencePlan,
  type Plan,
  readPlan,
  writePlan,
} from "./solver/plan.ts";
export { validityCheck } from "./solver/validity.ts";

// ONNX export (independent check and dense baseline)
export { exportOnnx } from "./runtime/onnx/export.ts";
export { OrtModel } from "./runtime/onnx/ort.ts";

// benchmarks and data
export {
  generateCases,
  type LongEvalCase,
  readLongEvalJsonl,
  scoreAnswer,
  summarize,
  writeLongEvalJsonl,
} from "./data/longeval/longeval.ts";
export { HELDOUT_WORDS, TRAIN_WORDS } from "./data/longeval/words.ts";
export { brownSplit, brownText, readBrownDocuments } from "./data/brown.ts";

// experiments
export {
  type Cell,
  expandCells,
  type Experiment,
  loadExperiment,
  parseExperiment,
} from "./experiments/schema.ts";
export { runExperiment, type RunOptions, type RunResult } from "./experiments/runner.ts";
export { mergeRuns } from "./experiments/merge.ts";
export { CSV_COLUMNS, readMetricsCsv, type Row } from "./experiments/csv.ts";
