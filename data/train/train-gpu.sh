#!/usr/bin/env bash
# Continues moa-tiny's training on a lent GPU machine (jax-js on WebGPU), inside a fixed lease:
#   data/train/train-gpu.sh SECONDS [BASE_RECIPE] [STATE_DIR]
# 1. measures the gradient's speed there (`deno task bench train --device webgpu`): T = 8,192,
#    B = 2 layer by layer, and T = 4,096, B = 4 both as one program and layer by layer;
# 2. writes the recipe: BASE_RECIPE (default data/train/moa-tiny.json) plus a restart and two
#    phases, T = 8,192 then T = 4,096, with as many steps as the measured speed fits in what is
#    left of SECONDS (a third of it at 8,192), taking the one program at 4,096 where it is faster;
# 3. trains from STATE_DIR (default data/train/checkpoints/moa-tiny, the shipped state) to the
#    recipe's end, checkpointing every 25 steps, without the CPU evaluations (--no-eval).
# With RECIPE=FILE set, steps 1 and 2 are skipped: FILE is trained as it is (one program at
# 4,096 tokens), e.g. RECIPE=data/train/moa-tiny-v12.json from v11's state.
# What comes back in $OUT (or ./gpu-out): the recipe, the last checkpoint, loss.csv and logs.
# The steps are fixed in the recipe once written, so a stopped run resumes anywhere, on the CPU
# too (deno task train-tiny --config RECIPE --out DIR). Meant for the `device` tool's machine:
#   source .gpu/on-gpu.sh; tar -xJf .gpu/nm.tar.xz; DENO_RUN_FLAGS=--cached-only \
#     data/train/train-gpu.sh 540
set -uo pipefail
cd "$(dirname "$0")/../.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
unset RUST_BACKTRACE
budget=${1:?usage: data/train/train-gpu.sh SECONDS [BASE_RECIPE] [STATE_DIR]}
base=${2:-data/train/moa-tiny.json}
state=${3:-data/train/checkpoints/moa-tiny}
out=${OUT:-gpu-out}
mkdir -p "$out"
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }
deno_run() {
  # shellcheck disable=SC2086
  "${DENO:-deno}" run -A ${DENO_RUN_FLAGS:-} "$@"
}
nvidia-smi -L 2>/dev/null | tee "$out/probe.log"
recipe=${RECIPE:-data/train/moa-tiny-gpu.json}
if [ -z "${RECIPE:-}" ]; then
# 1. speed; a probe that fails or hangs (an adapter limit) just leaves its way out
probe() { # name timeout args…
  local name=$1 limit=$2
  shift 2
  # shellcheck disable=SC2086
  timeout "$limit" "${DENO:-deno}" run -A ${DENO_RUN_FLAGS:-} experiments/commands/bench.ts train \
    --device webgpu --rounds 1 --json "$@" >"$out/probe-$name.json" 2>>"$out/probe.log" || echo "probe $name failed" >>"$out/probe.log"
}
probe long 90 --contexts 8192 --batch 2
probe one 90 --contexts 4096 --batch 4 --program-gib 60
[ -s "$out/probe-one.json" ] || probe layer 90 --contexts 4096 --batch 4
cat "$out"/probe-*.json >>"$out/probe.log"
# 2. the recipe
deno_run - "$base" "$recipe" "$(left)" "$out" <<'EOF' 2>&1 | tee -a "$out/probe.log" || exit 1
const [base, recipe, left, out] = Deno.args;
const read = (name: string) => {
  try {
    return JSON.parse(Deno.readTextFileSync(`${out}/probe-${name}.json`))[0];
  } catch {
    return null;
  }
};
const long = read("long"), short = read("one") ?? read("layer");
if (!long || !short) throw new Error("no speed measured; see probe.log");
const perStep = (tokens: number, tps: number) => 1.15 * tokens / tps + 0.15; // + data, Adam
const s8 = perStep(2 * 8192, long.layerwise_tokens_per_s);
const oneFaster = short.one_program_tokens_per_s > short.layerwise_tokens_per_s;
const s4 = perStep(4 * 4096, oneFaster ? short.one_program_tokens_per_s : short.layerwise_tokens_per_s);
const train = Number(left) - 60; // start-up, compilation, the last checkpoint
const n8 = Math.max(1, Math.floor(train / 3 / s8)), n4 = Math.max(1, Math.floor((2 * train) / 3 / s4));
const cfg = JSON.parse(Deno.readTextFileSync(base));
const at = cfg.phases.reduce((a: number, p: { steps: number }) => a + p.steps, 0);
const mix = { brown: 0.2, longeval: 0.1, multiQuery: 0.25, copy: 0.05, repeat: 0.05, recall: 0.35 };
const common = { answer: "echo", keys: "varied", valueWeight: 2, mix, lrScale: 0.3 };
cfg.optimizer.restarts = [...(cfg.optimizer.restarts ?? []), at];
cfg.optimizer.restartWarmups = [...(cfg.optimizer.restartWarmups ?? []), 10];
cfg.phases.push({ steps: n8, T: 8192, B: 2, lines: [64, 800], ...common });
cfg.phases.push({ steps: n4, T: 4096, B: 4, lines: [32, 400], spread: 8192, spreadShare: 0.5, ...common });
cfg.checkpointEvery = 25;
Deno.writeTextFileSync(recipe, JSON.stringify(cfg, null, 2) + "\n");
Deno.writeTextFileSync(`${out}/program-gib`, oneFaster ? "60" : "3");
console.log(`recipe: ${n8} steps at 8,192 (${s8.toFixed(2)} s each), ${n4} at 4,096 ` +
  `(${s4.toFixed(2)} s each, ${oneFaster ? "one program" : "layer by layer"})`);
EOF
else
  echo 60 >"$out/program-gib"
fi
cp "$recipe" "$out/"
# 3. training, stopped in time to copy its last checkpoint back
run=/tmp/moa-tiny-gpu
rm -rf "$run" && cp -r "$state" "$run"
# shellcheck disable=SC2086
timeout $(($(left) - 15)) "${DENO:-deno}" run -A ${DENO_RUN_FLAGS:-} experiments/commands/train_tiny.ts \
  --config "$recipe" --out "$run" --device webgpu --program-gib "$(cat "$out/program-gib")" \
  --max-minutes "$(echo "$(left)" | awk '{print ($1 - 40) / 60}')" --no-eval >"$out/train.log" 2>&1
echo "train exit $?" >>"$out/train.log"
step=$(sed -n 's/.*"step": *\([0-9]*\).*/\1/p' "$run/latest.json" | head -1)
cp "$run/latest.json" "$run/loss.csv" "$out/"
cp "$run"/checkpoint-*"$step".safetensors "$run"/checkpoint-*"$step".json "$out/" 2>/dev/null
ls -la "$out"
