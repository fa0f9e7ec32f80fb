#!/bin/bash
# Join the scored shards (each image's records stay in one shard) and build the DPO pairs:
#   bash examples/slurm/merge.sh run1        (the array size as caption.sbatch recorded it in run1/shards/array)
#   bash examples/slurm/merge.sh run1 8      (or given: tasks 0-7)
# Only a complete set is merged: a missing or unfinished shard (a task that failed, was killed or is still
# running) is an error naming it, before anything is written.
set -euo pipefail
OUT=${1:?output folder}
FILTER_ARGS=${FILTER_ARGS:-}   # the paper's thresholds are the defaults
PAIR_ARGS=${PAIR_ARGS:-}
fail() { echo "merge.sh: $*" >&2; exit 1; }
FIRST=0
STEP=1
if [ -n "${2:-}" ]; then
  COUNT=$2
elif [ -f "$OUT/shards/array" ]; then
  # "COUNT [FIRST [STEP]]": the task count, the first task id and the id step (--array=0-18:2)
  read -r COUNT FIRST STEP < "$OUT/shards/array"
  FIRST=${FIRST:-0}
  STEP=${STEP:-1}
else
  fail "$OUT/shards/array not found (written by caption.sbatch): give the array size, e.g. merge.sh $OUT 8"
fi
[[ "$COUNT" =~ ^[1-9][0-9]*$ && "$FIRST" =~ ^[0-9]+$ && "$STEP" =~ ^[1-9][0-9]*$ ]] \
  || fail "bad array size '$COUNT' (first task '$FIRST', step '$STEP')"
SHARDS=()
MISSING=()
for ((k = FIRST; k < FIRST + COUNT * STEP; k += STEP)); do
  f=$OUT/shards/scored.$k.jsonl
  if [ -f "$f" ]; then
    SHARDS+=("$f")
  elif [ -e "$f.partial" ]; then
    MISSING+=("$f (unfinished: $f.partial)")
  else
    MISSING+=("$f")
  fi
done
if [ ${#MISSING[@]} -gt 0 ]; then
  fail "${#MISSING[@]} of $COUNT scored shards missing: $(printf '%s, ' "${MISSING[@]}" | sed 's/, $//'); \
rerun those array tasks (sbatch --array=K examples/slurm/score.sbatch $OUT), then merge again"
fi
for f in "$OUT"/shards/scored.*.jsonl; do
  k=${f##*/scored.}
  k=${k%.jsonl}
  if ! [[ "$k" =~ ^[0-9]+$ ]] || ((k < FIRST || k >= FIRST + COUNT * STEP || (k - FIRST) % STEP)); then
    fail "$f is not a shard of the array of $COUNT tasks from $FIRST (step $STEP): remove it or give the array size"
  fi
done
cat "${SHARDS[@]}" > "$OUT/scored.jsonl.partial"
mv "$OUT/scored.jsonl.partial" "$OUT/scored.jsonl"
# shellcheck disable=SC2086
clipdpo filter "$OUT/scored.jsonl" $FILTER_ARGS --rejects "$OUT/filter-rejects.jsonl" \
  | clipdpo pair $PAIR_ARGS > "$OUT/pairs.jsonl"
echo "$(wc -l < "$OUT/pairs.jsonl") pairs in $OUT/pairs.jsonl (from $COUNT scored shards)" >&2
