#!/usr/bin/env bash
# The miniature world where CLIP-DPO visibly works (run by `make repro-mini`; docs/reproducing.md).
# Builds the world (32 px scenes, AMBER-format val/test splits), trains the open_clip ranker and, per SFT
# seed, the biased tiny LLaVA captioner; then runs caption | score --categorize | filter | pair | train |
# eval-amber with the real clipdpo commands for CLIP-DPO and its controls, and prints the table.
# Everything lands under mini-out/ (or $MINI_OUT); rerunning reuses what is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${MINI_OUT:-mini-out}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # two seeds run side by side (--jobs 2) HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::FutureWarning}
python -m clipdpo_cli.mini repro "$out" "$@"
echo "table: $out/table.txt, $out/table.json, $out/table.png" >&2
