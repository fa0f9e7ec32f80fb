#!/usr/bin/env bash
# The main job, offline: run by `make demo`. Writes everything under demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo-out
mkdir -p "$out"
echo "== filter + pair on examples/data/scored-sample.jsonl (bundled scored captions)"
clipdpo filter examples/data/scored-sample.jsonl --rejects "$out/rejects.jsonl" \
  | clipdpo pair > "$out/pairs.jsonl"
echo "== $(wc -l < "$out/pairs.jsonl") pairs in $out/pairs.jsonl; first one:"
head -1 "$out/pairs.jsonl"
