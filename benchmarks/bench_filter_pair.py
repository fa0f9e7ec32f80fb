"""Benchmark `clipdpo filter` and `clipdpo pair` on 1,000,000 synthetic scored records.

Compares, in one run: a bare orjson read-and-write loop (the floor), `clipdpo filter`, the equivalent
`jq -c 'select(...)'`, and `clipdpo pair`. Prints seconds, ratios and peak RSS.

    python benchmarks/bench_filter_pair.py [--images 200000] [--captions 5] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys

import orjson

sys.path.insert(0, os.path.dirname(__file__))
from common import best_of, best_of_interleaved, measure, table  # noqa: E402

WORDS = (
    "a the dog cat man woman red blue small large wooden table street car tree sky holding "
    "sitting standing near on in with two three white black green grass building window "
    "road sign "
).split()
BARE_LOOP = (
    "import sys, orjson\n"
    "out = sys.stdout.buffer\n"
    "for line in sys.stdin.buffer:\n"
    "    out.write(orjson.dumps(orjson.loads(line), option=orjson.OPT_APPEND_NEWLINE))\n"
)
JQ_FILTER = (
    'select(if .kind == "qa" then .question_score >= 25 '
    'else .clip_score >= 28 and ((.text | split(" ") | map(select(. != "")) | length) <= 60) end)'
)


def make_input(path: str, images: int, captions: int) -> None:
    rng = random.Random(0)
    with open(path, "wb") as fh:
        for i in range(images):
            image = f"coco/train2017/{i:012d}.jpg"
            category = rng.choice(("people", "objects", "scenes"))
            for j in range(captions):
                words = [rng.choice(WORDS) for _ in range(rng.randint(8, 70))]
                if rng.random() < 0.03:  # some captions quote a word or hold a non-ASCII one
                    words[0] = rng.choice(('"sign"', "café", "naïve"))
                text = " ".join(words)
                record = {
                    "id": f"{i:08x}{j}",
                    "image": image,
                    "kind": "caption",
                    "text": text,
                    "prompt": f"prompt {j}",
                    "model": "llava-hf/llava-1.5-7b-hf",
                    "sample": 0,
                    "clip_score": round(rng.uniform(20, 38), 3),
                    "scorer": "dfn-h14",
                    "category": category,
                    "category_sim": round(rng.uniform(0.1, 0.3), 4),
                }
                fh.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))


def kept_ids(path: str) -> set[str]:
    with open(path, "rb") as fh:
        return {orjson.loads(line)["id"] for line in fh}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--captions", type=int, default=5)
    parser.add_argument(
        "--repeat", type=int, default=1, help="best of N runs per command (bare loop and filter alternate)"
    )
    parser.add_argument("--workdir", default=".bench")
    args = parser.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    data = os.path.join(args.workdir, f"scored-{args.images}x{args.captions}-v2.jsonl")
    if not os.path.exists(data):
        print(f"writing {args.images * args.captions:,} records to {data} ...", file=sys.stderr)
        make_input(data, args.images, args.captions)
    py = sys.executable
    clipdpo = [py, "-m", "clipdpo_cli"]
    filtered = os.path.join(args.workdir, "filtered.jsonl")
    jq_out = os.path.join(args.workdir, "jq.jsonl")

    # both write to /dev/null when timed; filter's output is kept from one more, untimed, run
    bare, flt = best_of_interleaved(
        args.repeat,
        [
            ("bare orjson loop (floor)", ([py, "-c", BARE_LOOP], data), {}),
            ("clipdpo filter", ([*clipdpo, "filter", "-q"], data), {}),
        ],
    )
    measure("clipdpo filter (to a file)", [*clipdpo, "filter", "-q"], data, filtered)
    rows = [bare, flt]
    if shutil.which("jq"):
        jq = best_of(args.repeat, "jq -c 'select(...)'", ["jq", "-c", JQ_FILTER], data, jq_out)
        rows.append(jq)
        kept_jq, kept_flt = kept_ids(jq_out), kept_ids(filtered)
        if kept_jq != kept_flt:
            raise SystemExit(
                f"jq kept {len(kept_jq):,} records, clipdpo filter {len(kept_flt):,}, "
                f"{len(kept_jq ^ kept_flt):,} of them not both: not the same work"
            )
    pair = best_of(args.repeat, "clipdpo pair", [*clipdpo, "pair", "-q"], data)
    pair_filtered = best_of(
        args.repeat, "clipdpo pair (on filter output)", [*clipdpo, "pair", "-q"], filtered
    )
    rows += [pair, pair_filtered]

    print(f"input: {data} ({os.path.getsize(data) / 1e6:.0f} MB, {args.images * args.captions:,} records)")
    print(table(rows, bare))
    print(
        f"filter vs bare loop: {flt.seconds / bare.seconds:.2f}x the floor in wall time, "
        f"{flt.cpu_seconds / bare.cpu_seconds:.2f}x in CPU time (target <= 1.5)"
    )
    if shutil.which("jq"):
        print(
            f"filter vs jq: {jq.seconds / flt.seconds:.2f}x faster in wall time, "
            f"{jq.cpu_seconds / flt.cpu_seconds:.2f}x in CPU time (target >= 3)"
        )
    print(f"peak RSS: filter {flt.peak_rss_mb:.0f} MB, pair {pair.peak_rss_mb:.0f} MB (target < 300)")


if __name__ == "__main__":
    main()
