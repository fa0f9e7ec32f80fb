#!/usr/bin/env bash
# Every benchmark with the settings recorded in docs/benchmarks.md (`make bench`; long: tens of minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src
python benchmarks/bench_filter_pair.py --repeat 5
OMP_NUM_THREADS=2 python benchmarks/bench_score.py --dir .bench/score
OMP_NUM_THREADS=1 python benchmarks/bench_caption.py --stage-batch-1
if [ -d ../shared/amber ]; then OMP_NUM_THREADS=1 python benchmarks/bench_amber.py --amber-root ../shared/amber; fi
OMP_NUM_THREADS=1 python benchmarks/zeroshot_rescore.py --images 48 --max-new-tokens 16
OMP_NUM_THREADS=2 python benchmarks/bench_train.py --repeats 3 --steps 6 --hidden 768 --layers 6
