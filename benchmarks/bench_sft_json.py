"""Benchmark: reading a llava_v1_5_mix665k.json-sized SFT pool (io/sources.py, `--input-format json`).

    python benchmarks/bench_sft_json.py [--entries 665000] [--keep FILE]

Writes a synthetic array of ENTRIES LLaVA-style entries (four turns of about 200 words, 1 in 16 text-only,
images drawn from 400,000 names so many repeat; about 1.2 GB for 665,000), then times in one process:
- baseline: orjson.loads of the whole file, the floor of any reader that parses it at once;
- the source: open_input + every record, as `caption` reads it (one record per distinct image).
Peak resident memory (ru_maxrss) is that of the whole process.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clipdpo_cli.io.sources import InputSettings, open_input  # noqa: E402
from clipdpo_cli.io.stage import StageContext  # noqa: E402


def write_pool(path: str, entries: int) -> None:
    rng = random.Random(0)
    question = "Describe the image in detail. " * 8
    answer = "The image shows a kitchen with a wooden table, several chairs and a window. " * 6
    turns = [{"from": "human", "value": "<image>\n" + question}, {"from": "gpt", "value": answer}] * 2
    pool = []
    for i in range(entries):
        entry: dict = {"id": f"{i:09d}", "conversations": turns}
        if i % 16:
            entry["image"] = f"coco/train2017/{rng.randrange(400_000):012d}.jpg"
        pool.append(entry)
    with open(path, "wb") as fh:
        fh.write(orjson.dumps(pool))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=665_000)
    parser.add_argument("--keep", help="write the pool here (and reuse it when it exists)")
    args = parser.parse_args()
    path = args.keep or os.path.join(tempfile.mkdtemp(), "mix.json")
    if not os.path.exists(path):
        write_pool(path, args.entries)
    size = os.path.getsize(path)
    start = time.perf_counter()
    with open(path, "rb") as fh:
        n_entries = len(orjson.loads(fh.read()))
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    ctx = StageContext("bench")
    source = open_input(path, InputSettings(), ctx, lambda *a: None, [0])
    n_records = sum(1 for _ in source.prepare(source.records, ctx))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{n_entries:,} entries, {size / 1e9:.2f} GB -> {n_records:,} records")
    print(f"baseline orjson.loads: {baseline:.1f} s; source: {seconds:.1f} s ({seconds / baseline:.2f}x)")
    print(f"peak resident memory: {peak:.1f} GB ({peak * 1e9 / size:.1f}x the file)")
    print(ctx.stats.notes[0])
    if not args.keep:
        os.remove(path)


if __name__ == "__main__":
    main()
