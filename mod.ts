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
 * const cpu = new CpuModel(model, await fastEngine());
 * const [out] = await generateGreedy(cpu, [tokenizer.encode("line 1: ")], { maxNewTokens: 4 });
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
 * const cpu = new CpuModel(await loadModel(dir), await fastEngine());
 * const { plan } = await makePlan(cpu, await loadTokenizer(dir), "moa-tiny", {
 *   density: 0.5, lengths: [512, 1024], servingLength: 2048, samples: 4, block: 32, sink: 32, seed: 0,
 * });
 * await writePlan("plan-d0.5.json", plan); // alphas/betas per layer and kv head, as the reference
 * ```
 *
 * @module
 */

// model formats
export type {
  HalfWeight,
  LayerWeights,
  Model,
  ModelConfig,
  ModelType,
  ModelWeights,
  RopeScaling,
  Weight,
} from "./runtime/model.ts";
export { loadModel, type LoadOptions, saveModel, type SaveOptions } from "./runtime/hf.ts";
export { configToJson, parseConfig, type TorchDtype } from "./runtime/config.ts";
export {
  type Dtype,
  encodeSafetensors,
  type FloatDtype,
  parseSafetensors,
  type TensorHeader,
  type TensorToWrite,
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
export { type Backend, BACKENDS } from "./runtime/session.ts";
export {
  type CacheKind,
  cacheOf,
  isMoa,
  type Method,
  METHOD_TABLE,
  type MethodEntry,
  METHODS,
  type MethodSpec,
  type MoaEntry,
  type MoaMethod,
  type PlanRecipe,
  planRecipe,
  streamingRules,
} from "./runtime/methods.ts";
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
  type AttentionDims,
  type Engine,
  type LayerKernels,
  type LogitsOf,
  type NextInputs,
  type RangeDims,
} from "./runtime/cpu/engine.ts";
export { TsEngine, tsEngine } from "./runtime/cpu/engine_ts.ts";
export { OrtEngine } from "./runtime/cpu/engine_ort.ts";
export { JaxEngine } from "./runtime/cpu/engine_jax.ts";
export { NativeEngine } from "./runtime/cpu/engine_native.ts";
export { KvMemory, type KvMemoryShape } from "./runtime/cpu/engine_simd.ts";
export type { Products } from "./runtime/cpu/weight_matmul.ts";
export {
  AutoEngine,
  ENGINE_CHOICES,
  type EngineChoice,
  engineOf,
  fastEngine,
} from "./runtime/cpu/engine_auto.ts";

// the MoA chain: calibrate → profile → optimise → validate → plan
export {
  buildCalibration,
  type CalibrationKind,
  type CalibrationOptions,
  type CalibrationResponse,
  type CalibrationSample,
} from "./data/calibration.ts";
export type { InfluenceDevice } from "./runtime/autodiff/influence.ts";
// profileInfluence takes jax-js parameters (runtime/autodiff/), which makePlan prepares itself
export { type BlockInfluence, ruleLosses } from "./solver/profile.ts";
export {
  type BandMode,
  bandModeOf,
  type BlockMask,
  type CandidateOptions,
  candidateRules,
  droppedBlocks,
  type Rule,
  ruleDensity,
  ruleKeeps,
} from "./solver/rules.ts";
export {
  type Constraint,
  densityProblemFromRules,
  type Problem,
  type RulesProblemInput,
  type Solution,
} from "./solver/problem.ts";
export { solveMilp, type SolveOptions } from "./solver/milp.ts";
export type { HighsOptions } from "./solver/highs.ts";
export { type ParetoOptions, paretoSet } from "./solver/pareto.ts";
export {
  makePlan,
  type PlanResult,
  type PlanSearch,
  type PlanSettings,
  type ProfileCache,
  validationLoss,
} from "./solver/pipeline.ts";
export {
  exportReferencePlan,
  formatReferencePlan,
  type GroupDisagreement,
  type HeadShape,
  importReferencePlan,
  importReferencePlanFor,
  type Plan,
  type PlanMeta,
  readPlan,
  toKvHeads,
  toQueryHeads,
  writePlan,
} from "./solver/plan.ts";
export { validityCheck, type ValidityPair } from "./solver/validity.ts";
export {
  checkSparsePlan,
  elasticSpan,
  type PlanShape,
  referenceCacheSize,
  referenceWindow,
  referenceWindowStart,
  SPAN_SEMANTICS,
  type SpanSemantics,
  type SparsePlan,
} from "./runtime/spans.ts";

// ONNX export (independent check and dense baseline)
export { exportOnnx, type ExportOnnxOptions } from "./runtime/onnx/export.ts";
export { OrtModel, type PrefillResult } from "./runtime/onnx/ort.ts";

// benchmarks and data
export {
  generateCases,
  type GenerateOptions as LongEvalOptions,
  type LongEvalCase,
  type LongEvalSummary,
  readLongEvalJsonl,
  scoreAnswer,
  summarize,
  writeLongEvalJsonl,
} from "./data/longeval/longeval.ts";
export { HELDOUT_WORDS, TRAIN_WORDS, type WordLists } from "./data/longeval/words.ts";
export {
  type BrownDocument,
  type BrownPart,
  brownSplit,
  brownText,
  readBrownDocuments,
} from "./data/brown.ts";
export {
  generateRulerCases,
  RULER_TASKS,
  type RulerCase,
  type RulerOptions,
  type RulerTask,
  scoreRuler,
} from "./data/ruler/ruler.ts";

// experiments
export {
  type BenchmarkName,
  BENCHMARKS,
  type BenchmarkSettings,
  type Cell,
  type DuoSettings,
  expandCells,
  type Experiment,
  type Influence,
  INFLUENCES,
  loadExperiment,
  type LongEvalSettings,
  parseExperiment,
  type PerplexitySettings,
  type ProfileSettings,
  type RulerSettings,
  type ThroughputSettings,
} from "./experiments/schema.ts";
export {
  type ResolvedRun,
  runExperiment,
  type RunOptions,
  type RunResult,
  type Shard,
} from "./experiments/run.ts";
export type { Progress } from "./experiments/progress.ts";
export { type MergeOptions, type MergeResult, mergeRuns } from "./experiments/merge.ts";
export { CSV_COLUMNS, readMetricsCsv, type Row } from "./experiments/csv.ts";
