#!/usr/bin/env bash
# Submits a benchmark matrix to SLURM: one array task per shard (ci/slurm/bench-task.sbatch, one
# result file each), then the merge (ci/slurm/merge.sbatch) as a job depending on the array:
# afterok -> the merged table and plot; afternotok -> the same merge reporting which shards are
# missing (a failed or cancelled task). --kill-on-invalid-dep=yes removes whichever of the two can
# no longer run, so nothing stays pending.
#
#   ci/slurm/submit.sh [--tenpak BIN] [--matrix FILE] [--results DIR] [--bench-args 'OPTS'] [SBATCH_ARGS...]
#
# Defaults (in the checkout): build/tenpak, reports/bench-matrix.json, results/slurm. SBATCH_ARGS go to the array
# (e.g. --partition=gpu --gres=gpu:1 --cpus-per-task=16 --time=00:30:00 --hold);
# TENPAK_MERGE_SBATCH_ARGS to the merge jobs. Paths must be on a file system every node sees.
# Prints the job ids, then a last line "array=A merge=M missing=F shards=N results=DIR".
set -euo pipefail
caller=$(pwd)
cd "$(dirname "$0")/../.."
repo=$(pwd)
tenpak=$repo/build/tenpak matrix=$repo/reports/bench-matrix.json results=$repo/results/slurm bench_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tenpak) tenpak=$2; shift 2 ;;
    --matrix) matrix=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --bench-args) bench_args=$2; shift 2 ;;
    *) break ;;
  esac
done
abs() { case "$1" in /*) echo "$1" ;; *) echo "$caller/$1" ;; esac; }  # the caller's relative paths
tenpak=$(abs "$tenpak") matrix=$(abs "$matrix") results=$(abs "$results")
[ -x "$tenpak" ] || { echo "submit: no tenpak binary at $tenpak (build it, or --tenpak BIN)" >&2; exit 2; }
# the shard count is the matrix's (tenpak reads the file; the same split in every task)
shards=$("$tenpak" bench --matrix "$matrix" --plan | awk '$1 == "shards" {print $2}')
[ -n "$shards" ] || { echo "submit: could not read the shard count of $matrix" >&2; exit 2; }
mkdir -p "$results"
export TENPAK="$tenpak" TENPAK_MATRIX="$matrix" TENPAK_RESULTS="$results" TENPAK_BENCH_ARGS="$bench_args"
array=$(sbatch --parsable --array="1-$shards" --output="$results/slurm-%A_%a.out" "$@" ci/slurm/bench-task.sbatch)
array=${array%%;*}
export TENPAK_ARRAY_JOB="$array" TENPAK_SHARDS="$shards"
# shellcheck disable=SC2086  # a list of options
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes --output="$results/slurm-%j-merge.out" \
  ${TENPAK_MERGE_SBATCH_ARGS:-} ci/slurm/merge.sbatch)
# shellcheck disable=SC2086
missing=$(sbatch --parsable --dependency="afternotok:$array" --kill-on-invalid-dep=yes --job-name=tenpak-merge-missing \
  --output="$results/slurm-%j-merge-missing.out" ${TENPAK_MERGE_SBATCH_ARGS:-} ci/slurm/merge.sbatch)
echo "submitted: array job ${array%%;*} ($shards tasks, results in $results/run-$array/), merge ${merge%%;*} (afterok), missing-shard report ${missing%%;*} (afternotok)"
echo "array=${array%%;*} merge=${merge%%;*} missing=${missing%%;*} shards=$shards results=$results"
