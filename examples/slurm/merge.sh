#!/bin/bash
# Join the scored shards (each image's records stay in one shard) and build the DPO pairs:
#   bash examples/slurm/merge.sh run1
set -euo pipefail
OUT=${1:?output folder}
FILTER_ARGS=${FILTER_ARGS:-}   # the paper's thresholds are the defaults
PAIR_ARGS=${PAIR_ARGS:-}
cat "$OUT"/shards/scored.*.jsonl > "$OUT/scored.jsonl"
# shellcheck disable=SC2086
clipdpo filter "$OUT/scored.jsonl" $FILTER_ARGS --rejects "$OUT/filter-rejects.jsonl" \
  | clipdpo pair $PAIR_ARGS > "$OUT/pairs.jsonl"
echo "$(wc -l < "$OUT/pairs.jsonl") pairs in $OUT/pairs.jsonl" >&2
