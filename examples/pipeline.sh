#!/usr/bin/env bash
# The CLIP-DPO pipeline with the paper's models, as a user with GPUs and the Hugging Face Hub runs it
# (the same steps as examples/demo.sh, which runs them offline on tiny models).
#   IMAGES=/data/sft_images OUT=run1 bash examples/pipeline.sh
# Paper: LLaVA-1.5 7B or MobileVLM-v2 captions its own SFT images (5 prompts), OpenHermes-2.5-Mistral-7B
# writes 2 questions per image, ViT-H-14 DFN ranks, rules filter, DPO for 1 epoch (see docs/reproducing.md).
set -euo pipefail
# shellcheck disable=SC2086  # the *_ARGS variables are word-split on purpose
IMAGES=${IMAGES:?set IMAGES to a folder of training images}
OUT=${OUT:-clipdpo-run}
LVLM=${LVLM:-llava-hf/llava-1.5-7b-hf}
LLM=${LLM:-teknium/OpenHermes-2.5-Mistral-7B}
SCORER=${SCORER:-dfn-h14}
AMBER=${AMBER:-}        # your copy of the AMBER benchmark (data/ + image/), optional
ZS_ROOT=${ZS_ROOT:-}    # folder with the nine zero-shot datasets, optional
# Per-stage options (override to experiment; tests/e2e/test_e2e_scripts.py runs this script on tiny models).
# Sampling is left at the commands' documented defaults (docs/generation.md; the paper publishes none).
# Departures from the defaults: ask --batch-size 32 (default 8: prompts per generate call; the output does
# not depend on it). caption's --batch-size auto sizes itself to the GPU, score's --precision auto is bf16 there.
CAPTION_ARGS=${CAPTION_ARGS:---samples-per-prompt 1}
ASK_ARGS=${ASK_ARGS:---questions 2 --batch-size 32}
SCORE_ARGS=${SCORE_ARGS:-}
FILTER_ARGS=${FILTER_ARGS:-}   # the paper's thresholds are the defaults
PAIR_ARGS=${PAIR_ARGS:-}
# Every GPU busy: each model pass (caption, ask, score, the evaluations' generation) runs as NGPUS processes,
# `--shard K/N` each, which `--device auto` puts on visible GPU K (docs/generation.md, "Many GPUs"); the shard
# files are then concatenated in shard order. NGPUS: CUDA_VISIBLE_DEVICES's count, else nvidia-smi's, else 1.
if [ -z "${NGPUS:-}" ]; then
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    NGPUS=$(tr ',' '\n' <<< "$CUDA_VISIBLE_DEVICES" | grep -c .)
  elif command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
    NGPUS=$(nvidia-smi -L | grep -c '^GPU')
  else
    NGPUS=1
  fi
fi
[ "$NGPUS" -ge 1 ] 2> /dev/null || { echo "pipeline.sh: NGPUS must be a number >= 1, got '$NGPUS'" >&2; exit 2; }
# Training: the paper's 7B setting (Sec. 5: ZeRO-3, --batch-size 64 instead of 256) with --per-device-batch-size
# 4, one training process per GPU (--num-processes NGPUS); for a smaller LVLM (MobileVLM-v2 1.7B, 3B) drop
# --batch-size 64 (the paper's 256).
TRAIN_ARGS=${TRAIN_ARGS:---num-processes $NGPUS --deepspeed zero3 --per-device-batch-size 4 --batch-size 64}
EVAL_ARGS=${EVAL_ARGS:-}
mkdir -p "$OUT"
echo "pipeline.sh: $NGPUS GPU process(es) per model pass" >&2

# sharded OUTPUT PASS: run `PASS K N FILE` for K = 0..NGPUS-1 side by side (FILE: OUTPUT.shards/K-of-N.jsonl,
# resumed after a crash), then merge them into OUTPUT. An OUTPUT that exists is a finished pass: kept.
sharded() {
  local out=$1 pass=$2 k pids=() failed=0
  if [ -e "$out" ]; then
    echo "pipeline.sh: $out exists, $pass skipped (delete it to redo the pass)" >&2
    return 0
  fi
  mkdir -p "$out.shards"
  for ((k = 0; k < NGPUS; k++)); do
    "$pass" "$k" "$NGPUS" "$out.shards/$k-of-$NGPUS.jsonl" &
    pids+=($!)
  done
  for k in "${!pids[@]}"; do
    wait "${pids[$k]}" || { echo "pipeline.sh: $pass shard $k/$NGPUS failed" >&2; failed=1; }
  done
  [ "$failed" = 0 ] || exit 1
  merge "$out"
}

# merge OUTPUT: cat OUTPUT.shards/K-of-N.jsonl for K = 0..N-1 in order into OUTPUT (written under a
# temporary name, renamed when whole); refuses if a shard's file is missing.
merge() {
  local out=$1 k files=()
  for ((k = 0; k < NGPUS; k++)); do
    if [ ! -f "$out.shards/$k-of-$NGPUS.jsonl" ]; then
      echo "pipeline.sh: cannot merge $out: shard $k/$NGPUS ($out.shards/$k-of-$NGPUS.jsonl) is missing" >&2
      exit 1
    fi
    files+=("$out.shards/$k-of-$NGPUS.jsonl")
  done
  cat "${files[@]}" > "$out.partial"
  mv "$out.partial" "$out"
}

# The passes, one shard each (K N FILE); --device is left at auto: shard K runs on GPU K mod NGPUS.
caption_pass() {
  clipdpo caption "$IMAGES" --model "$LVLM" $CAPTION_ARGS --seed 0 --shard "$1/$2" -o "$3" --resume
}
ask_pass() {
  mkdir -p "$OUT/ask-rejects.jsonl.shards"
  touch "$OUT/ask-rejects.jsonl.shards/$1-of-$2.jsonl"   # a shard with no rejects still has its file
  clipdpo ask "$OUT/captions.jsonl" --model "$LLM" $ASK_ARGS --shard "$1/$2" \
    --rejects "$OUT/ask-rejects.jsonl.shards/$1-of-$2.jsonl" -o "$3" --resume
}
score_captions_pass() {
  clipdpo score "$OUT/captions.jsonl" --model "$SCORER" --categorize $SCORE_ARGS --shard "$1/$2" -o "$3" --resume
}
# the question score, then the answer's; the second keeps the same --shard K/N (its input is shard K's
# records, all of which it owns) so that it runs on the same GPU
score_questions_pass() {
  clipdpo score "$OUT/questions.jsonl" --model "$SCORER" --field question --score-field question_score \
      --scorer-field question_scorer --categorize $SCORE_ARGS --shard "$1/$2" \
    | clipdpo score --model "$SCORER" $SCORE_ARGS --shard "$1/$2" -o "$3"
}
amber_pass() {
  clipdpo eval-amber --model "$OUT/model" --amber-root "$AMBER" --generate-only --shard "$1/$2" -r "$3" \
    --resume $EVAL_ARGS
}
zeroshot_pass() {   # a captioning shard writes its captions and stops (docs/zeroshot.md)
  clipdpo eval-zeroshot --dataset all --data-root "$ZS_ROOT" --model "$OUT/model" --shard "$1/$2" \
    --captions "$3" $EVAL_ARGS
}

# 1. generation: captions (5 prompts x 1 sample) and questions with positive/negative answers
sharded "$OUT/captions.jsonl" caption_pass
sharded "$OUT/questions.jsonl" ask_pass
[ -e "$OUT/ask-rejects.jsonl" ] || merge "$OUT/ask-rejects.jsonl"

# 2. annotation: CLIP scores (ViT-H-14 DFN, 100 x cosine) and image categories in one pass
sharded "$OUT/scored-captions.jsonl" score_captions_pass
sharded "$OUT/scored-questions.jsonl" score_questions_pass

# 3. global filtering and pair filtering, with the paper's thresholds (the defaults); pair --input-order any:
#    the two scored files are concatenated, so an image's records are not adjacent
cat "$OUT/scored-captions.jsonl" "$OUT/scored-questions.jsonl" \
  | clipdpo filter $FILTER_ARGS --rejects "$OUT/filter-rejects.jsonl" \
  | clipdpo pair --input-order any $PAIR_ARGS > "$OUT/pairs.jsonl"

# 4. DPO training with the paper's hyperparameters (its 7B batch, see TRAIN_ARGS) under ZeRO-3 on every GPU
#    (a rerun keeps a finished model: train refuses an --output-dir that holds a run unless --overwrite).
#    For several runs from one model (beta / loss sweeps), compute the reference log-probs once (sharded over
#    the GPUs like the passes above) and train on them without a reference copy in memory (docs/training.md):
#      clipdpo ref-logps "$OUT/pairs.jsonl" -m "$LVLM" --shard K/N -o ... (examples/slurm/train.sbatch)
if [ ! -s "$OUT/model/train_summary.json" ]; then
  clipdpo train "$OUT/pairs.jsonl" --model "$LVLM" --output-dir "$OUT/model" $TRAIN_ARGS > "$OUT/train-summary.json"
fi

# 5. evaluation: the answers sharded over the GPUs, then scored once from the merged file
if [ -n "$AMBER" ]; then
  sharded "$OUT/amber-responses.jsonl" amber_pass
  clipdpo eval-amber --responses "$OUT/amber-responses.jsonl" --amber-root "$AMBER" > "$OUT/amber.json"
fi
if [ -n "$ZS_ROOT" ]; then
  # on one GPU the scoring command below captions too (only what its --captions file lacks)
  [ "$NGPUS" -eq 1 ] || sharded "$OUT/zeroshot-captions.jsonl" zeroshot_pass
  clipdpo eval-zeroshot --dataset all --data-root "$ZS_ROOT" --model "$OUT/model" \
    --captions "$OUT/zeroshot-captions.jsonl" $EVAL_ARGS > "$OUT/zeroshot.jsonl"
fi
