#!/usr/bin/env bash
# The miniature world where CLIP-DPO visibly works (run by `make repro-mini`; docs/reproducing.md).
# Builds the world (32 px scenes, AMBER-format val/test splits), trains the open_clip ranker and, per SFT
# seed, the biased tiny LLaVA captioner; then runs caption | score --categorize | filter | pair | train |
# eval-amber with the real clipdpo commands for CLIP-DPO and its controls, and prints the table.
# Everything lands under mini-out/ (or $MINI_OUT); rerunning reuses what is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${MINI_OUT:-mini-out}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # the three seeds run side by side (--jobs 3)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # everything is built here: nothing to download
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::FutureWarning}
python -m clipdpo_mini repro "$out" "$@"
echo "table: $out/table.txt, $out/table.json, $out/table.png" >&2

# The figures of seed 0 (scores, filter drops, pairs, training curves, AMBER test split of every arm).
s0=$out/seed0
arms=()
for arm in base clip-dpo+sft clip-dpo random-images random-swap-dpo self-preference random-ranker random-pairs round2; do
  case $arm in base | round*) f=$s0/$arm/amber-test.json ;; *) f=$s0/$arm/eval/amber-test.json ;; esac
  [ -f "$f" ] && arms+=(--amber "$arm=$f")
done
trains=()
for arm in clip-dpo+sft clip-dpo random-images random-swap-dpo self-preference random-pairs; do
  [ -d "$s0/$arm/model" ] && trains+=(--train "$arm=$s0/$arm/model")
done
rejects=()
[ -f "$s0/ranker/rejects.jsonl" ] && rejects=(--rejects "$s0/ranker/rejects.jsonl")
clipdpo report -q --scored "$s0/ranker/scored.jsonl" "${rejects[@]}" --pairs "$s0/ranker/pairs.jsonl" \
  "${trains[@]}" "${arms[@]}" -o "$out/report.html" --png-dir "$out/figures"
echo "report: $out/report.html" >&2
