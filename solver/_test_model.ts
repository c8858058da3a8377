/**
 * A small random model with the byte-level tokenizer, shared by the solver's tests (LongEval
 * calibration prompts need ~600 tokens, which one byte per token gives).
 *
 * @module
 */
import { CpuModel } from "../runtime/cpu/forward.ts";
import { randomModel, tinyConfig } from "../runtime/random_model.ts";
import { byteLevelTokenizerJson, tokenizerFromJson } from "../runtime/tokenizer.ts";

/** 2 layers, 4 query / 2 kv heads, width 32, 320-entry vocabulary. */
export const byteModelConfig = tinyConfig({
  vocabSize: 320,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  hiddenSize: 32,
  headDim: 8,
  intermediateSize: 48,
});

/** A CPU runner of the random model (seed 3, scale 10) and the byte-level tokenizer. */
export function byteModel() {
  return {
    runner: new CpuModel(randomModel(byteModelConfig, 3, 10)),
    tok: tokenizerFromJson(byteLevelTokenizerJson([])),
  };
}
