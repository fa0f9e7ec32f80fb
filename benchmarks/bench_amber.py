"""Benchmark: scoring AMBER's 15,220 responses with the built-in (offline) NLP backend.

    python benchmarks/bench_amber.py [--amber-root ../shared/amber]

Synthetic responses on the real annotations: a ~90-word description per image (truth and hallu words,
plurals, safe words, fillers) and a Yes/No answer per question. Timed in the same run:
- baseline: reading and parsing the responses file (JSON), the floor any scorer pays;
- score (exact similarity): the default `--nlp builtin`;
- score (similarity table): the same with a table lookup per word pair (cached);
- the CLI end to end in a subprocess (Python and package start-up included).
The target is < 10 s for the whole scoring on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from clipdpo_cli.eval.amber.data import load_amber  # noqa: E402
from clipdpo_cli.eval.amber.evaluate import score_responses  # noqa: E402
from clipdpo_cli.eval.amber.nlp.builtin import BuiltinNouns  # noqa: E402
from clipdpo_cli.eval.amber.nlp.similarity import ExactSimilarity, TableSimilarity, build_table  # noqa: E402
from clipdpo_cli.eval.amber.responses import read_responses  # noqa: E402

FILLERS = ("The image shows", "In the background, there is", "Next to it, we can see", "There are also",
           "The scene includes", "Overall, the picture captures", "On the left side stands")  # fmt: skip


def plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def description(rng: random.Random, truth: list[str], hallu: list[str], safe: list[str]) -> str:
    words = truth + rng.sample(hallu, k=min(2, len(hallu))) + rng.sample(safe, k=2)
    rng.shuffle(words)
    parts = []
    for word in words:
        noun = plural(word) if rng.random() < 0.3 else word
        adjective = rng.choice(("a large", "a small", "an old", "the", "two", "several", "a bright"))
        filler = rng.choice(FILLERS)
        parts.append(f"{filler} {adjective} {noun} near the edge of the frame, which looks calm.")
    return " ".join(parts)


def make_responses(data, path: str, seed: int = 0) -> int:
    rng = random.Random(seed)
    items = []
    for qid in sorted(data.annotations):
        a = data.annotations[qid]
        if a["type"] == "generative":
            items.append({"id": qid, "response": description(rng, a["truth"], a["hallu"], data.safe_words)})
        else:
            items.append({"id": qid, "response": rng.choice(("Yes", "No"))})
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(items, fh)
    return len(items)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(name, fn, repeat=3):
    best = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), cpu()
        value = fn()
        wall, cpu_s = time.perf_counter() - w0, cpu() - c0
        if best is None or wall < best[1]:
            best = (name, wall, cpu_s, value)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amber-root", default=str(REPO.parent / "shared" / "amber"))
    args = parser.parse_args()
    root = args.amber_root
    if not os.path.isfile(os.path.join(root, "annotations.json")) and not os.path.isfile(
        os.path.join(root, "data", "annotations.json")
    ):
        raise SystemExit(f"AMBER annotation files not found under {root} (pass --amber-root)")
    data = load_amber(root)
    work = tempfile.mkdtemp(prefix="bench-amber-")
    path = os.path.join(work, "responses.json")
    n = make_responses(data, path)
    words = sorted(set(data.vocabulary))
    table_path = os.path.join(work, "similarity.json")
    rng = random.Random(1)  # a stand-in table: random similarities, ~2% of pairs above 0.5
    sims = {(a, b): rng.random() for a in words for b in words if a < b}
    with open(table_path, "w") as fh:
        json.dump(build_table(words, lambda a, b: sims[min(a, b), max(a, b)] ** 40, "random"), fh)

    def score(similarity):
        responses = read_responses(path)
        return score_responses(data, responses, "all", BuiltinNouns(data.vocabulary_set), similarity)

    rows = [
        timed("baseline: read responses", lambda: read_responses(path)),
        timed("score, exact similarity", lambda: score(ExactSimilarity())),
        timed("score, similarity table", lambda: score(TableSimilarity(table_path))),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "clipdpo_cli", "eval-amber", "--amber-root", root, "--responses", path, "-q"]
    w0 = time.perf_counter()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, env=env, check=True)
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    rows.append(("CLI end to end (subprocess)", time.perf_counter() - w0, cli_cpu, json.loads(proc.stdout)))

    base = rows[0]
    print(f"AMBER scoring benchmark: {n:,} responses ({len(data.ids('generative')):,} descriptions)")
    print(f"{'step':<32} {'wall s':>8} {'x base':>8} {'cpu s':>8} {'x base':>8}")
    for name, wall, cpu_s, _ in rows:
        cpu_ratio = cpu_s / max(base[2], 1e-9)
        print(f"{name:<32} {wall:>8.3f} {wall / base[1]:>8.1f} {cpu_s:>8.3f} {cpu_ratio:>8.1f}")
    result = rows[1][3]
    g = result["generative"]
    print(f"figures (exact): CHAIR {g['CHAIR']} Cover {g['Cover']} Hal {g['Hal']} Cog {g['Cog']}; "
          f"{g['counts']['mentions']:,} object mentions; AMBER {result['AMBER']}")  # fmt: skip
    slowest = max(wall for _, wall, _, _ in rows)
    print(f"target < 10 s: {'met' if slowest < 10 else 'NOT met'} (slowest step {slowest:.2f} s)")


if __name__ == "__main__":
    main()
