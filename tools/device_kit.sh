#!/usr/bin/env bash
# The device kit: the wheels the lent GPU machine's image lacks, for its Python 3.12 on manylinux x86_64,
# downloaded into .whl/ (git-ignored; it travels with the tree, which may carry 64 MiB in all).
#
#   bash tools/device_kit.sh            # here, where PyPI is reachable: builds .whl/ and prints its size
#
# Then, on the GPU machine (the device tool's `run`, carry [".whl"]), one command installs them and runs the
# benchmark, whose JSON comes back in $OUT even if a section fails or the command is cut off:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --out $OUT/gpu.json
#
# The image (/work/.library/device/KINDS.md) has torch 2.11, transformers 5.17, accelerate 1.15, peft, timm,
# pyarrow, pandas, xxhash, fsspec, huggingface-hub, tokenizers, safetensors, jinja2, pyyaml, regex, tqdm,
# psutil, shellingham, annotated-doc, sentencepiece, scipy, tensorboard and pillow, but not what is listed
# below. Each is pinned to the version this project's venv installs (tests/test_device_kit.py checks it), and
# named with every dependency the image lacks, since pip downloads them with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEST=${DEST:-.whl}
LIMIT_MIB=${LIMIT_MIB:-64}
WHEELS=(
  orjson==3.13.0                 # io/jsonl.py: every record read and written
  trl==1.16.0                    # train: DPOTrainer / KTOTrainer
  datasets==5.2.0                # trl's dataset type; HF dataset / parquet inputs
  dill==0.4.1                    # datasets
  multiprocess==0.70.19          # datasets
  open_clip_torch==3.3.0         # score: the open_clip scorers (ViT-H/14)
  ftfy==6.3.1                    # open_clip's tokenizer
  wcwidth==0.9.5                 # ftfy
  typer==0.29.2                  # the CLI (train runs as `clipdpo train`); the image's is older
  pydantic==2.14.4               # typer 0.29
  pydantic_core==2.50.5          # pydantic
  annotated-types==0.8.0         # pydantic
  typing-inspection==0.4.5       # pydantic
  typing_extensions==4.16.0      # pydantic 2.14 needs >= 4.16
  rich==15.0.0                   # typer 0.29 needs >= 13.8
)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64
           manylinux2014_x86_64 manylinux1_x86_64)
rm -rf "$DEST"
mkdir -p "$DEST"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]/#/--platform=}" -d "$DEST" "${WHEELS[@]}"
# one version of each: two of a name stop the whole install there
names=$(for f in "$DEST"/*.whl; do basename "$f" | cut -d- -f1 | tr 'A-Z-' 'a-z_'; done | sort)
if [ -n "$(uniq -d <<< "$names")" ]; then
  echo "device_kit.sh: two wheels of one name: $(uniq -d <<< "$names" | tr '\n' ' ')" >&2
  exit 1
fi
size=$(du -sk "$DEST" | cut -f1)
echo "device_kit.sh: $(ls "$DEST" | wc -l) wheels, $((size / 1024)) MiB in $DEST (limit ${LIMIT_MIB} MiB with the tree)" >&2
if [ "$size" -gt $((LIMIT_MIB * 1024)) ]; then
  echo "device_kit.sh: $DEST is over ${LIMIT_MIB} MiB" >&2
  exit 1
fi
