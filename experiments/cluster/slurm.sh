#!/usr/bin/env bash
# Runs an experiment on a Slurm cluster: an array job of N shards (`--shard i/N`), then a merge
# job that starts once every shard has succeeded, and, when a baseline is given, a comparison and
# a report. Follows the shard/merge contract in README.md ("Results").
#
#   experiments/cluster/slurm.sh EXPERIMENT.yaml [SHARDS]
#
# Environment (all optional):
#   MOA_OUT          where shard folders, the merge, logs and the report go
#                    (default results/slurm-<experiment file name>)
#   MOA_CACHE        the stage cache every shard shares (default results/.cache); on a shared
#                    file system the cache's claims keep shards from computing a plan twice
#   MOA_BASELINE     a merged run folder to compare against (deno task compare); the merge job
#                    then fails on a regression
#   MOA_DENO         the deno command on the compute nodes (default: deno)
#   MOA_SBATCH_ARGS  extra sbatch options for every job (e.g. "--partition=cpu --time=02:00:00")
#   MOA_WAIT=1       block until the merge job ends (sbatch --wait) and exit with its status
#
# Prints the array job's and the merge job's ids. Run it from the repository root on a node that
# shares the repository and MOA_OUT with the compute nodes.
set -euo pipefail

file=${1:-}
shards=${2:-2}
if [ -z "$file" ] || ! [[ "$shards" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 EXPERIMENT.yaml [SHARDS]  (see the comments at the top for the environment)" >&2
  exit 2
fi
[ -f "$file" ] || { echo "error: $file: no such experiment file" >&2; exit 2; }
command -v sbatch >/dev/null || { echo "error: sbatch not found: is this a Slurm login node?" >&2; exit 2; }

root=$(cd "$(dirname "$0")/../.." && pwd)
name=$(basename "$file" .yaml)
out=${MOA_OUT:-results/slurm-$name}
cache=${MOA_CACHE:-results/.cache}
deno=${MOA_DENO:-deno}
mkdir -p "$out/logs"
# shellcheck disable=SC2206 # the extra options are meant to split into words
extra=(${MOA_SBATCH_ARGS:-})

# each array task runs its shard into its own folder (the same on a rerun: --resume continues it)
shard_cmd="cd '$root' && export XDG_RUNTIME_DIR=\${XDG_RUNTIME_DIR:-/tmp} && \
  out='$out/shard'\$SLURM_ARRAY_TASK_ID && \
  resume=\$([ -f \"\$out/experiment.resolved.json\" ] && echo --resume || true) && \
  $deno task experiment '$file' --shard \$SLURM_ARRAY_TASK_ID/$shards --out \"\$out\" \
    --cache '$cache' \$resume"
array=$(sbatch --parsable "${extra[@]}" --job-name="moa-$name" --array="0-$((shards - 1))" \
  --output="$out/logs/shard-%a.log" --wrap="$shard_cmd")
array=${array%%;*}

# the merge waits for every shard to succeed; it then reports, and compares with a baseline
merge_cmd="cd '$root' && export XDG_RUNTIME_DIR=\${XDG_RUNTIME_DIR:-/tmp} && \
  rm -rf '$out/merged' && \
  $deno task experiment merge $(for i in $(seq 0 $((shards - 1))); do printf "'%s/shard%d' " "$out" "$i"; done)--out '$out/merged' && \
  $deno task report '$out/merged' --out '$out/report'"
if [ -n "${MOA_BASELINE:-}" ]; then
  merge_cmd="$merge_cmd && $deno task compare '$MOA_BASELINE' '$out/merged' --markdown '$out/compare.md'"
fi
wait_flag=()
[ "${MOA_WAIT:-0}" = 1 ] && wait_flag=(--wait)
echo "array job $array: $shards shards of $file → $out/shard<i>"
set +e
merge=$(sbatch --parsable "${extra[@]}" "${wait_flag[@]}" --job-name="moa-$name-merge" \
  --dependency="afterok:$array" --kill-on-invalid-dep=yes --output="$out/logs/merge.log" \
  --wrap="$merge_cmd")
status=$?
set -e
echo "merge job ${merge%%;*}: → $out/merged, report in $out/report"
exit $status
