#!/usr/bin/env bash
# Runs the WebGPU benchmark on a machine with an NVIDIA GPU (Vulkan driver) and Deno 2.9:
#   experiments/bench/gpu.sh [extra `deno task bench gpu` options]
# Defaults there: contexts 4k, 8k, 16k, 32k; moa-tiny and Llama-2-7B's shape (random f16
# weights generated on the device); onnxruntime-web's WebGPU EP up to 4k. Meant to take a few
# minutes on an H200. Rows go to results/bench/gpu-<host>.csv, the table of ratios to stdout.
# Offline (node_modules unpacked beside the checkout): DENO_RUN_FLAGS=--cached-only.
set -euo pipefail
cd "$(dirname "$0")/../.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
unset RUST_BACKTRACE
# shellcheck disable=SC2086
"${DENO:-deno}" run -A ${DENO_RUN_FLAGS:-} experiments/commands/bench.ts gpu \
  --csv "results/bench/gpu-$(hostname).csv" "$@"
