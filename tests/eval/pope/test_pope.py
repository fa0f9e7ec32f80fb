"""POPE: the official answer reading (every trap), metrics by hand and equal to the official script, the
exporter on the real files, and the command end to end on a shrunken LLaVA-1.5."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from clipdpo_cli.eval.pope.data import load_pope
from clipdpo_cli.eval.pope.evaluate import metrics, official_answer, score_responses
from clipdpo_cli.eval.pope.queries import DEFAULT_POST_PROMPT, query_records
from clipdpo_cli.io.errors import InputError
from tests.conftest import run_in_process
from tests.eval.amber.amber_helpers import REPO, running_in_ci
from tests.eval.pope.pope_reference import official_evaluate

TRAPS = [
    ("Yes", "yes"),
    ("No", "no"),
    ("no", "no"),
    ("NO", "yes"),  # case matters: only 'No' and 'no'
    ("No.", "no"),
    ("No, there is no dog.", "no"),
    ("Yes, there is a dog. No cat.", "yes"),  # only the first sentence
    ("There is not a dog", "no"),
    ("Not at all", "yes"),  # 'Not' is not 'not'
    ("Nope", "yes"),
    ("no!", "yes"),  # punctuation other than ',' and '.' stays on the word
    ("No\nthere is none", "yes"),  # split on ' ' only: 'No\nthere' is one word
    ("No\tdog", "yes"),
    (" No", "no"),
    ("", "yes"),  # an empty answer is a yes
    (". No", "yes"),  # the first sentence is empty
    ("yes,no", "yes"),  # commas dropped: 'yesno'
    ("no,", "no"),
    ("I cannot tell", "yes"),
    ("There is no", "no"),
    ("3.5 no", "yes"),  # '.' inside a number still ends the 'sentence': '3'
]


@pytest.mark.parametrize(("text", "answer"), TRAPS)
def test_official_answer_traps(text, answer):
    assert official_answer(text) == answer
    # the official script on [text, 'Yes'] (one sure yes, so that it does not divide by zero)
    assert official_evaluate([{"answer": text}, {"answer": "Yes"}], ["yes", "yes"])["yes_ratio"] == (
        1.0 if answer == "yes" else 0.5
    )


def test_metrics_by_hand():
    # answers vs labels: TP = 3 (1, 2, 3), FP = 2 (5, 6), TN = 2 (7, 8), FN = 1 (4)
    answers = ["Yes", "yes, a dog.", "There is a dog", "No.", "NO", "Nope", "no", "It is not there"]
    labels = ["yes", "yes", "yes", "yes", "no", "no", "no", "no"]
    got = metrics(zip(map(official_answer, answers), labels, strict=True))
    assert (got["tp"], got["fp"], got["tn"], got["fn"]) == (3, 2, 2, 1)
    assert got["accuracy"] == 5 / 8
    assert got["precision"] == 3 / 5
    assert got["recall"] == 3 / 4
    assert got["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert got["yes_ratio"] == 5 / 8
    assert official_evaluate([{"answer": a} for a in answers], labels) == {
        k: got[k] for k in ("tp", "fp", "tn", "fn", "accuracy", "precision", "recall", "f1", "yes_ratio")
    }


@pytest.mark.parametrize("seed", range(5))
def test_equals_the_official_script(seed):
    rng = random.Random(seed)
    texts = [t for t, _ in TRAPS] + ["Yes, it is.", "No, it is not.", "yes", "The answer is no"]
    answers = [rng.choice(texts) for _ in range(300)]
    labels = [rng.choice(["yes", "no"]) for _ in range(300)]
    ours = metrics(zip(map(official_answer, answers), labels, strict=True))
    official = official_evaluate([{"answer": a} for a in answers], labels)
    assert {k: ours[k] for k in official} == official


def test_zero_denominators_are_null():
    got = metrics([("no", "yes"), ("no", "no")])  # no yes answer: the official script divides by zero
    assert got["precision"] is None and got["f1"] is None and got["recall"] == 0.0 and got["accuracy"] == 0.5


def _questions(tiny_pope):
    return load_pope(str(tiny_pope[0]))


def test_prob_answers_and_matching(tiny_pope):
    questions = _questions(tiny_pope)
    responses = [
        {"id": "random-1", "response": "No", "p_yes": 0.6, "p_no": 0.3},  # read from p: yes
        {"id": "random-2", "response": "Yes", "p_yes": 0.2, "p_no": 0.2},  # a tie is no, as respond decides
        {"id": "random-3", "response": "Yes", "p_yes": 0.1, "p_no": 0.5},
    ]
    result = score_responses({"random": questions["random"]}, responses, "prob")
    s = result["sets"]["random"]
    assert (s["tp"], s["fp"], s["tn"], s["fn"]) == (1, 0, 1, 1)
    assert result["responses"] == {"scored": 3, "expected": 4, "missing": 1, "duplicates": 0}
    assert result["complete"] is False
    with pytest.raises(InputError, match="p_yes and p_no"):
        score_responses(questions, [{"id": "random-1", "response": "Yes"}], "prob")
    with pytest.raises(InputError, match="not a POPE question id"):
        score_responses(questions, [{"id": "popular-9", "response": "Yes"}], "generate")


def test_generate_reads_the_raw_text(tiny_pope):
    """A free answer of the respond stage keeps its text in `text` (its `response` is already Yes/No)."""
    questions = {"random": _questions(tiny_pope)["random"][:1]}
    record = {"id": "random-1", "response": "No", "text": "NO WAY", "mode": "yes_no_generate"}
    assert score_responses(questions, [record], "generate")["sets"]["random"]["tp"] == 1


def shared_pope_dir() -> Path | None:
    for base in (REPO.parent, REPO.parent.parent):
        if (base / "shared" / "pope" / "coco_pope_random.json").is_file():
            return base / "shared" / "pope"
    return None


def test_queries_of_the_official_files():
    root = shared_pope_dir()
    if root is None:
        if running_in_ci():
            pytest.fail("POPE files (../shared/pope) not available: CI=true, so this test must run")
        pytest.skip("POPE files (../shared/pope) not available")
    questions = load_pope(str(root))
    queries = query_records(questions, "/coco/val2014")
    assert len(queries) == 9000 and len({q["id"] for q in queries}) == 9000
    assert queries[0] == {
        "id": "random-1",
        "image": "/coco/val2014/COCO_val2014_000000310196.jpg",
        "prompt": "Is there a snowboard in the image?" + DEFAULT_POST_PROMPT,
        "yes_no": True,
        "question_id": 1,
        "label": "yes",
        "question": "Is there a snowboard in the image?",
        "split": "random",
        "pope_image": "COCO_val2014_000000310196.jpg",
    }
    assert [q["split"] for q in queries[::3000]] == ["random", "popular", "adversarial"]
    assert sum(q["label"] == "yes" for q in queries) == 4500
    assert (
        DEFAULT_POST_PROMPT == "\nAnswer the question using a single word or phrase."
    )  # lmms-eval's pope.yaml


def _official_from_responses(path: Path, questions, mode: str) -> dict:
    by_id = {json.loads(line)["id"]: json.loads(line) for line in path.read_text().splitlines()}
    out = {}
    for split, items in questions.items():
        if mode == "prob":  # the official reading of the answer respond wrote from the probabilities
            texts = [
                "Yes"
                if by_id[f"{split}-{q['question_id']}"]["p_yes"]
                > by_id[f"{split}-{q['question_id']}"]["p_no"]
                else "No"
                for q in items
            ]
        else:
            texts = [by_id[f"{split}-{q['question_id']}"]["text"] for q in items]
        labels = [q["label"] for q in items]
        out[f"{split}_answers"] = [official_answer(t) for t in texts]
        try:
            out[split] = official_evaluate([{"answer": t} for t in texts], labels)
        except ZeroDivisionError:
            out[split] = None  # no yes answer (or no TP): the official script stops; ours reports null
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prob", "generate"])
def test_eval_pope_end_to_end(tiny_pope, family_dir, tmp_path, mode):
    root, images = tiny_pope
    model = family_dir("llava15")
    responses, out = tmp_path / "r.jsonl", tmp_path / "m.json"
    done = run_in_process(
        "eval-pope",
        "--pope-root",
        str(root),
        "--image-root",
        str(images),
        "--model",
        model,
        "--device",
        "cpu",
        "--yes-no",
        mode,
        "--max-new-tokens",
        "4",
        "--batch-size",
        "3",
        "-r",
        str(responses),
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in responses.read_text().splitlines()]
    assert len(rows) == 12 and {r["split"] for r in rows} == {"random", "popular", "adversarial"}
    assert all(r["mode"] == f"yes_no_{mode}" and r["label"] in ("yes", "no") for r in rows)
    result = json.loads(out.read_text())
    assert result["complete"] and result["model"] == model and result["yes_no"] == mode
    questions = load_pope(str(root))
    official = _official_from_responses(responses, questions, mode)
    for split in questions:
        expected = official[split]
        got = result["sets"][split]
        counts = (got["tp"], got["fp"], got["tn"], got["fn"])
        if expected is not None:
            assert {k: got[k] for k in expected} == expected
        else:  # the official script stops (a zero denominator): the counts, then, by hand
            pairs = list(
                zip(official[f"{split}_answers"], [q["label"] for q in questions[split]], strict=True)
            )
            assert counts == tuple(
                pairs.count(p) for p in (("yes", "yes"), ("yes", "no"), ("no", "no"), ("no", "yes"))
            )
        assert sum(counts) == 4
    assert "random" in done.stderr and "Acc" in done.stderr


def test_usage_and_input_errors(tiny_pope, tmp_path):
    root, _ = tiny_pope
    done = run_in_process("eval-pope", "--pope-root", str(root))
    assert done.returncode == 2 and "exactly one of --model" in done.stderr
    done = run_in_process("eval-pope", "--pope-root", str(tmp_path), "--responses", "x.jsonl")
    assert done.returncode == 1 and "coco_pope_random.json" in done.stderr and "Traceback" not in done.stderr
    partial = tmp_path / "r.jsonl"
    partial.write_text(json.dumps({"id": "random-1", "response": "Yes"}) + "\n")
    out = tmp_path / "m.json"
    done = run_in_process(
        "eval-pope",
        "--pope-root",
        str(root),
        "--responses",
        str(partial),
        "--yes-no",
        "generate",
        "--split",
        "random",
        "-o",
        str(out),
    )
    assert done.returncode == 1 and "3 of the 4 POPE questions have no response" in done.stderr
    assert json.loads(out.read_text())["sets"]["random"]["tp"] == 1  # the metrics are written first
    done = run_in_process(
        "eval-pope",
        "--pope-root",
        str(root),
        "--responses",
        str(partial),
        "--yes-no",
        "generate",
        "--split",
        "random",
        "--allow-partial",
    )
    assert done.returncode == 0


def test_generate_only_needs_a_model(tiny_pope):
    done = run_in_process(
        "eval-pope", "--pope-root", str(tiny_pope[0]), "--responses", "r.jsonl", "--generate-only"
    )
    assert done.returncode == 2 and "go with --model" in done.stderr


@pytest.mark.slow
def test_eval_pope_resume_answers_only_the_rest(tiny_pope, family_dir, tmp_path):
    root, images = tiny_pope
    model = family_dir("llava15")
    responses = tmp_path / "r.jsonl"
    base = [
        "eval-pope",
        "--pope-root",
        str(root),
        "--image-root",
        str(images),
        "--model",
        model,
        "--device",
        "cpu",
        "-r",
        str(responses),
    ]
    first = run_in_process(*base, "--split", "random", "--limit", "2", "-o", str(tmp_path / "a.json"))
    assert first.returncode == 0, first.stderr
    assert [json.loads(line)["id"] for line in responses.read_text().splitlines()] == ["random-1", "random-2"]
    again = run_in_process(*base, "--resume", "-o", str(tmp_path / "b.json"))
    assert again.returncode == 0, again.stderr
    ids = [json.loads(line)["id"] for line in responses.read_text().splitlines()]
    assert len(ids) == 12 and len(set(ids)) == 12 and ids[:2] == ["random-1", "random-2"]
    result = json.loads((tmp_path / "b.json").read_text())
    assert result["complete"] and result["responses"]["scored"] == 12


def test_config_file_sets_the_options_and_typed_ones_win(tiny_pope, tmp_path):
    """--config FILE: eval-pope's options by name (its settings' fields), the command line winning."""
    root, _ = tiny_pope
    files = {split: tmp_path / f"{split}.jsonl" for split in ("random", "popular")}
    for split, path in files.items():
        rows = [{"id": f"{split}-{q}", "response": "Yes"} for q in range(1, 5)]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "pope.yaml"
    config.write_text(f"responses: {files['random']}\nsplit: random\nyes-no: generate\n")
    done = run_in_process("eval-pope", "--pope-root", str(root), "--config", str(config), "-q")
    assert done.returncode == 0, done.stderr
    sets = json.loads(done.stdout)["sets"]
    assert list(sets) == ["random"] and (sets["random"]["tp"], sets["random"]["fp"]) == (2, 2)  # all "Yes"
    base = ("eval-pope", "--pope-root", str(root), "--config", str(config))
    done = run_in_process(*base, "--split", "popular", "--responses", str(files["popular"]))
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)["sets"]) == ["popular"]
