#!/usr/bin/env bash
# Iterative CLIP-DPO: round r+1 captions with round r's model, scores, filters, pairs, and trains from
# round r's model with that model as the reference; each round evaluated when AMBER_ROOT is set.
#
#   MODEL=llava-hf/llava-1.5-7b-hf IMAGES=sft_images/ ROUNDS=3 OUT=rounds/ examples/iterate.sh
#
# Every round has its own folder, OUT/roundR/: captions.jsonl, scored.jsonl, filtered.jsonl (+ rejects),
# pairs.jsonl, model/ (train --output-dir), train-summary.json, amber.json (with AMBER_ROOT) and round.json
# (which model it started from and was referenced to, its pair count). A rerun skips every finished step
# (each file is written under a .part name and renamed when complete; a model is finished when its run
# marker says so), so an interrupted run resumes where it stopped. Last, OUT/rounds.json and
# OUT/rounds.txt: one table of rounds (python -m clipdpo_cli.report.rounds OUT).
#
# Settings (environment):
#   MODEL         the round-0 model: Hub id or folder (required)
#   IMAGES        images to caption each round: folder, file list or dataset (required)
#   OUT           output folder (default iterate-out)
#   ROUNDS        last round (default 2);  FIRST_ROUND  first round to run (default 1: MODEL is round 0;
#                 FIRST_ROUND=2 continues from a round-1 model given as MODEL)
#   RANKER        score --model (default dfn-h14, the paper's)
#   SEED          captions of round r use --seed SEED+r, so every round samples afresh (default 0)
#   CAPTION_ARGS SCORE_ARGS FILTER_ARGS PAIR_ARGS TRAIN_ARGS EVAL_ARGS   extra options of each command
#                 (split on spaces; e.g. TRAIN_ARGS="--loss dpo,sft --num-processes 8")
#   AMBER_ROOT    evaluate round 0 and every round with eval-amber (optional)
# On a SLURM cluster: examples/slurm/iterate.sbatch runs this script as one job per round, each job
# submitting the next (docs/reproducing.md, "Rounds").
set -euo pipefail
: "${MODEL:?set MODEL (the round-0 model)}" "${IMAGES:?set IMAGES (the images to caption)}"
OUT=${OUT:-iterate-out}
ROUNDS=${ROUNDS:-2}
FIRST_ROUND=${FIRST_ROUND:-1}
RANKER=${RANKER:-dfn-h14}
SEED=${SEED:-0}
PYTHON=${PYTHON:-python}
read -r -a caption_args <<< "${CAPTION_ARGS:-}"
read -r -a score_args <<< "${SCORE_ARGS:-}"
read -r -a filter_args <<< "${FILTER_ARGS:-}"
read -r -a pair_args <<< "${PAIR_ARGS:-}"
read -r -a train_args <<< "${TRAIN_ARGS:-}"
read -r -a eval_args <<< "${EVAL_ARGS:-}"
mkdir -p "$OUT"

say() { echo "[iterate $(date +%H:%M:%S)] $*" >&2; }
done_file() { [ -s "$1" ]; }
# step FILE clipdpo CMD...: run it with -o FILE.part unless FILE is there; rename when it succeeded
step() {
  local file=$1; shift
  if done_file "$file"; then say "round $r: $(basename "$file") is there"; return; fi
  say "$* -o $file"
  rm -f "$file.part"
  "$@" -o "$file.part"
  mv "$file.part" "$file"
}
trained() {  # the train run's marker says finished
  [ -f "$1/.clipdpo-run.json" ] && "$PYTHON" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("finished") else 1)' "$1/.clipdpo-run.json"
}
evaluate() {  # evaluate MODEL FILE
  [ -n "${AMBER_ROOT:-}" ] || return 0
  step "$2" clipdpo eval-amber --model "$1" --amber-root "$AMBER_ROOT" -q "${eval_args[@]}"
}

r=0
[ "$FIRST_ROUND" -eq 1 ] && evaluate "$MODEL" "$OUT/round0-amber.json"
prev=$MODEL
for ((r = FIRST_ROUND; r <= ROUNDS; r++)); do
  d=$OUT/round$r
  mkdir -p "$d"
  if [ "$r" -gt "$FIRST_ROUND" ]; then prev=$OUT/round$((r - 1))/model; fi
  step "$d/captions.jsonl" clipdpo caption "$IMAGES" --model "$prev" --seed $((SEED + r)) -q "${caption_args[@]}"
  step "$d/scored.jsonl" clipdpo score "$d/captions.jsonl" --model "$RANKER" -q "${score_args[@]}"
  step "$d/filtered.jsonl" clipdpo filter "$d/scored.jsonl" --rejects "$d/rejects.jsonl" "${filter_args[@]}"
  step "$d/pairs.jsonl" clipdpo pair "$d/filtered.jsonl" "${pair_args[@]}"
  if ! trained "$d/model"; then
    again=()
    [ -e "$d/model" ] && again=(--overwrite)  # this script's own unfinished run of this round
    say "clipdpo train $d/pairs.jsonl --model $prev --output-dir $d/model ${train_args[*]} ${again[*]}"
    clipdpo train "$d/pairs.jsonl" --model "$prev" --output-dir "$d/model" "${train_args[@]}" "${again[@]}" \
      > "$d/train-summary.json.part"
    mv "$d/train-summary.json.part" "$d/train-summary.json"
  fi
  "$PYTHON" -c 'import json,sys
r, model, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]
pairs = sum(1 for line in open(d + "/pairs.jsonl") if line.strip())
json.dump({"round": r, "model": model, "reference": model, "pairs": pairs, "output_dir": d + "/model"},
          open(d + "/round.json", "w"), indent=1)' "$r" "$prev" "$d"
  evaluate "$d/model" "$d/amber.json"
done
"$PYTHON" -m clipdpo_cli.report.rounds "$OUT"
