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
# Departures from the defaults, for GPUs: caption/ask --batch-size 32 (defaults 16 / 8: rows per generate
# call; the output does not depend on it), score --precision bf16 (autocast; weights stay fp32, docs/clip.md).
CAPTION_ARGS=${CAPTION_ARGS:---samples-per-prompt 1 --batch-size 32}
ASK_ARGS=${ASK_ARGS:---questions 2 --batch-size 32}
SCORE_ARGS=${SCORE_ARGS:---precision bf16}
FILTER_ARGS=${FILTER_ARGS:-}   # the paper's thresholds are the defaults
PAIR_ARGS=${PAIR_ARGS:-}
# Training: the paper's 7B setting (Sec. 5: ZeRO-3, --batch-size 64 instead of 256) with --per-device-batch-size
# 4 to fit 8 GPUs; for a smaller LVLM (MobileVLM-v2 1.7B, 3B) drop --batch-size 64 (the paper's 256).
TRAIN_ARGS=${TRAIN_ARGS:---num-processes 8 --deepspeed zero3 --per-device-batch-size 4 --batch-size 64}
EVAL_ARGS=${EVAL_ARGS:-}
mkdir -p "$OUT"

# 1. generation: captions (5 prompts x 1 sample) and questions with positive/negative answers
clipdpo caption "$IMAGES" --model "$LVLM" $CAPTION_ARGS --seed 0 -o "$OUT/captions.jsonl" --resume
clipdpo ask "$OUT/captions.jsonl" --model "$LLM" $ASK_ARGS --rejects "$OUT/ask-rejects.jsonl" \
    -o "$OUT/questions.jsonl" --resume

# 2. annotation: CLIP scores (ViT-H-14 DFN, 100 x cosine) and image categories in one pass
clipdpo score "$OUT/captions.jsonl" --model "$SCORER" --categorize $SCORE_ARGS -o "$OUT/scored-captions.jsonl" --resume
clipdpo score "$OUT/questions.jsonl" --model "$SCORER" --field question --score-field question_score \
    --scorer-field question_scorer --categorize $SCORE_ARGS \
  | clipdpo score --model "$SCORER" $SCORE_ARGS -o "$OUT/scored-questions.jsonl"

# 3. global filtering and pair filtering, with the paper's thresholds (the defaults); pair --input-order any:
#    the two scored files are concatenated, so an image's records are not adjacent
cat "$OUT/scored-captions.jsonl" "$OUT/scored-questions.jsonl" \
  | clipdpo filter $FILTER_ARGS --rejects "$OUT/filter-rejects.jsonl" \
  | clipdpo pair --input-order any $PAIR_ARGS > "$OUT/pairs.jsonl"

# 4. DPO training with the paper's hyperparameters (its 7B batch, see TRAIN_ARGS) under ZeRO-3 on 8 GPUs
#    (a rerun keeps a finished model: train refuses an --output-dir that holds a run unless --overwrite).
#    For several runs from one model (beta / loss sweeps), compute the reference log-probs once and train on
#    them without a reference copy in memory (docs/training.md):
#      clipdpo ref-logps "$OUT/pairs.jsonl" -m "$LVLM" -o "$OUT/pairs.ref.jsonl"
if [ ! -s "$OUT/model/train_summary.json" ]; then
  clipdpo train "$OUT/pairs.jsonl" --model "$LVLM" --output-dir "$OUT/model" $TRAIN_ARGS > "$OUT/train-summary.json"
fi

# 5. evaluation
if [ -n "$AMBER" ]; then
  clipdpo eval-amber --model "$OUT/model" --amber-root "$AMBER" -r "$OUT/amber-responses.jsonl" --resume \
    $EVAL_ARGS > "$OUT/amber.json"
fi
if [ -n "$ZS_ROOT" ]; then
  clipdpo eval-zeroshot --dataset all --data-root "$ZS_ROOT" --model "$OUT/model" \
    --captions "$OUT/zeroshot-captions.jsonl" $EVAL_ARGS > "$OUT/zeroshot.jsonl"
fi
