/**
 * Test helpers of the trainer's tests (train_test.ts, train_webgpu_test.ts).
 *
 * @module
 */
import { parseTrainConfig, type TrainConfig } from "./config.ts";

/** A recipe small enough to train in seconds. */
export function tinyRecipe(steps: number): TrainConfig {
  return parseTrainConfig({
    seed: 3,
    model: {
      hidden: 32,
      layers: 1,
      heads: 2,
      kvHeads: 1,
      intermediate: 64,
      maxPositions: 512,
      ropeTheta: 10000,
    },
    tokenizer: { vocabSize: 320 },
    optimizer: {
      lr: 0.01,
      minLrRatio: 0.1,
      warmup: 5,
      weightDecay: 0.1,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      clip: 1,
    },
    loss: { contextWeight: 0.1, answerWeight: 1 },
    phases: [{
      steps,
      T: 160,
      B: 2,
      lines: [1, 1],
      mix: { brown: 1, longeval: 0, multiQuery: 0, copy: 0 },
    }],
    checkpointEvery: 1000,
    evalEvery: 1000,
    eval: { lengths: [], cases: 0 },
  }, "tiny.json");
}
