#!/bin/bash
# Join the scored shards (each image's records stay in one shard) and build the DPO pairs:
#   bash examples/slurm/merge.sh run1
set -euo pipefail
OUT=${1:?output folder}
cat "$OUT"/shards/scored.*.jsonl > "$OUT/scored.jsonl"
clipdpo filter "$OUT/scored.jsonl" --rejects "$OUT/filter-rejects.jsonl" | clipdpo pair > "$OUT/pairs.jsonl"
echo "$(wc -l < "$OUT/pairs.jsonl") pairs in $OUT/pairs.jsonl" >&2
