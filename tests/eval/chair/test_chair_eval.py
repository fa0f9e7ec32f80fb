"""CHAIR's counts: hand-computed on a small COCO, equal to the reference's counting, and end to end."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from clipdpo_cli.eval.chair.coco import CocoTruth
from clipdpo_cli.eval.chair.evaluate import score_responses
from clipdpo_cli.eval.chair.words import CocoWords, singularize, tokenize
from tests.conftest import run_in_process
from tests.eval.chair.chair_reference import ReferenceChair
from tests.eval.chair.conftest import coco_file_name

# r1: man/person ok, dog ok, chair and hot dog hallucinated (image 1: person, dog);
# r2: 'seat' dropped beside 'toilet', toilet ok, 'baby bird' -> bird (not a person) and sink hallucinated;
# r3: 'bus' is lost ('bu', as in the reference), 'wine glass' hallucinated, people -> person ok (image 3: bus,
#     person from the instances, bus again from 'Two buses' of its caption);
# r4: dog ok.
RESPONSES = [
    {"id": "r1", "image_id": 1, "response": "Two men and their dogs sit on chairs near a hot dog stand."},
    {
        "id": "r2",
        "image": coco_file_name(2),
        "response": "The seat of the toilet is open and a baby bird sits on the sink.",
    },
    {"id": "r3", "image_id": 3, "response": "A bus is next to a wine glass and people."},
    {"id": "r4", "image_id": "1", "response": "A dog."},
]


@pytest.fixture(scope="module")
def truth(tiny_coco):
    annotations, _ = tiny_coco
    return CocoTruth(
        str(annotations / "instances_val2014.json"), str(annotations / "captions_val2014.json"), CocoWords()
    )


def test_ground_truth_objects(truth):
    assert truth.objects(1) == {"person", "dog"}
    assert truth.objects(2) == {"toilet"}  # 'toilet seat' in its caption is the toilet, not a chair
    assert truth.objects(3) == {"bus", "person"}


def test_hand_computed_counts(truth):
    details: list = []
    result = score_responses(truth, RESPONSES, details)
    assert result["counts"] == {
        "responses": 4,
        "hallucinated_responses": 3,
        "mentions": 10,
        "hallucinated_mentions": 5,
        "truth_objects": 7,
        "covered_objects": 5,
    }
    assert result["CHAIRs"] == 3 / 4
    assert result["CHAIRi"] == 5 / 10
    assert result["recall"] == 5 / 7
    assert result["length"] == (13 + 15 + 10 + 2) / 4
    assert [d["hallucinated"] for d in details] == [
        ["chair", "hot dog"],
        ["bird", "sink"],
        ["wine glass"],
        [],
    ]


def test_equals_the_reference_counting(tiny_coco, truth):
    annotations, _ = tiny_coco
    synonyms = resources.files("clipdpo_cli.data").joinpath("chair_synonyms.txt").read_text("utf-8")
    reference = ReferenceChair([1, 2, 3], synonyms, tokenize, singularize)
    reference.get_annotations_from_segments(json.loads((annotations / "instances_val2014.json").read_text()))
    reference.get_annotations_from_captions(json.loads((annotations / "captions_val2014.json").read_text()))
    assert reference.imid_to_objects == {i: truth.objects(i) for i in (1, 2, 3)}
    more = [
        {"image_id": i, "response": text}
        for i, text in [
            (1, "A person with a cell phone and a mobile phone on a dining table."),
            (2, "Toilets, sinks and a teddybear; the toilet seat is down."),
            (3, "Buses, a fire hydrant, the adult dog, a stop sign and two passengers."),
            (1, "Nothing here."),
            (2, "A chair and a seat."),
        ]
    ]
    caps = [{"image_id": int(r.get("image_id") or 2), "caption": r["response"]} for r in RESPONSES + more]
    expected = reference.compute_chair(caps)
    ours = score_responses(truth, RESPONSES + more)
    assert (ours["CHAIRs"], ours["CHAIRi"]) == (expected["CHAIRs"], expected["CHAIRi"])
    # by hand: the added five have 4 + 4 + 5 + 0 + 2 mentions, 3 + 2 + 3 + 0 + 2 hallucinated (image 2's
    # 'toilet seat' is its toilet; a 'seat' with no toilet is a chair; 'passengers' are persons)
    assert (expected["CHAIRs"], expected["CHAIRi"]) == (7 / 9, 15 / 25)


def test_unknown_image_is_one_line(truth):
    from clipdpo_cli.io.errors import InputError

    with pytest.raises(InputError, match="not in the COCO instance file"):
        score_responses(truth, [{"image_id": 99, "response": "A dog."}])


def test_write_queries_and_score_cli(tiny_coco, tmp_path):
    annotations, images = tiny_coco
    ids = tmp_path / "ids.txt"
    ids.write_text('3\n{"image_id": 1, "question": "What is in the picture?"}\n')
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Describe it.\nWhat is this?\n")
    queries = tmp_path / "q.jsonl"
    done = run_in_process(
        "eval-chair",
        "--coco-annotations",
        str(annotations / "instances_val2014.json"),
        "--image-ids",
        str(ids),
        "--prompts",
        str(prompts),
        "--image-root",
        str(images),
        "--write-queries",
        str(queries),
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in queries.read_text().splitlines()]
    assert rows == [
        {"id": "chair-3", "image": str(images / coco_file_name(3)), "prompt": "Describe it.", "image_id": 3},
        {
            "id": "chair-1",
            "image": str(images / coco_file_name(1)),
            "prompt": "What is in the picture?",
            "image_id": 1,
        },
    ]
    responses = tmp_path / "r.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in RESPONSES))
    out = tmp_path / "m.json"
    done = run_in_process(
        "eval-chair",
        "--coco-annotations",
        str(annotations / "instances_val2014.json"),
        "--responses",
        str(responses),
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert (result["CHAIRs"], result["CHAIRi"], result["recall"]) == (0.75, 0.5, 5 / 7)
    assert "CHAIRs" in done.stderr and "75.00" in done.stderr
    # instances only: image 3's truth is the same, image 1's too; 'r2' unchanged -> same figures here
    done = run_in_process(
        "eval-chair",
        "--coco-annotations",
        str(annotations / "instances_val2014.json"),
        "--no-captions",
        "--responses",
        str(responses),
    )
    assert json.loads(done.stdout)["ground_truth"] == "instances"


def test_image_ids_select_and_check_the_responses(tiny_coco, tmp_path):
    annotations, _ = tiny_coco
    responses = tmp_path / "r.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in RESPONSES))
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n2\n")
    base = [
        "eval-chair",
        "--coco-annotations",
        str(annotations / "instances_val2014.json"),
        "--responses",
        str(responses),
        "--image-ids",
        str(ids),
    ]
    done = run_in_process(*base)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # r1, r2, r4 (image 3's r3 is not listed)
    assert result["counts"]["responses"] == 3 and result["CHAIRi"] == 4 / 8 and result["complete"] is True
    ids.write_text("1\n2\n3\n")
    responses.write_text("".join(json.dumps(r) + "\n" for r in RESPONSES[:2]))
    done = run_in_process(*base)
    assert done.returncode == 1 and "1 of the 3 images of --image-ids have no description" in done.stderr
    assert json.loads(done.stdout)["responses"] == {"scored": 2, "expected": 3, "missing": 1}
    assert run_in_process(*base, "--allow-partial").returncode == 0


def test_usage_errors(tiny_coco, tmp_path):
    annotations, _ = tiny_coco
    base = ["eval-chair", "--coco-annotations", str(annotations / "instances_val2014.json")]
    done = run_in_process(*base)
    assert done.returncode == 2 and "exactly one of --model" in done.stderr
    done = run_in_process(*base, "--responses", "x.jsonl", "-r", "y.jsonl")
    assert done.returncode == 2
    done = run_in_process("eval-chair", "--coco-annotations", str(tmp_path / "none.json"), "--responses", "x")
    assert done.returncode == 1 and "not found" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_eval_chair_end_to_end(tiny_coco, family_dir, tmp_path):
    """Descriptions by the shrunken LLaVA-1.5, scored in the same run, equal the reference's counting of
    the responses it wrote."""
    annotations, images = tiny_coco
    instances = str(annotations / "instances_val2014.json")
    responses, out = tmp_path / "r.jsonl", tmp_path / "m.json"
    done = run_in_process(
        "eval-chair",
        "--coco-annotations",
        instances,
        "--image-root",
        str(images),
        "--model",
        family_dir("llava15"),
        "--device",
        "cpu",
        "--max-new-tokens",
        "12",
        "-r",
        str(responses),
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in responses.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["chair-1", "chair-2", "chair-3"] and all(
        r["mode"] == "describe" for r in rows
    )
    result = json.loads(out.read_text())
    assert result["counts"]["responses"] == 3 and result["model"] == family_dir("llava15")
    synonyms = resources.files("clipdpo_cli.data").joinpath("chair_synonyms.txt").read_text("utf-8")
    reference = ReferenceChair([1, 2, 3], synonyms, tokenize, singularize)
    reference.get_annotations_from_segments(json.loads((annotations / "instances_val2014.json").read_text()))
    reference.get_annotations_from_captions(json.loads((annotations / "captions_val2014.json").read_text()))
    caps = [{"image_id": r["image_id"], "caption": r["response"]} for r in rows]
    mentions = sum(len(reference.caption_to_words(c["caption"])[1]) for c in caps)
    if mentions:
        assert (result["CHAIRs"], result["CHAIRi"]) == tuple(reference.compute_chair(caps).values())
    else:  # a random model's words may name no COCO object: the reference divides by zero there
        assert (result["CHAIRs"], result["CHAIRi"]) == (0.0, None)
    rescored = run_in_process("eval-chair", "--coco-annotations", instances, "--responses", str(responses))
    assert json.loads(rescored.stdout)["counts"] == result["counts"]


def test_config_file_sets_the_options(tiny_coco, tmp_path):
    """--config FILE: eval-chair's options by name (its settings' fields); a name it lacks is one line."""
    annotations, _ = tiny_coco
    responses = tmp_path / "r.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in RESPONSES))
    config = tmp_path / "chair.yaml"
    config.write_text(f"responses: {responses}\nno_captions: true\n")
    base = ["eval-chair", "--coco-annotations", str(annotations / "instances_val2014.json")]
    done = run_in_process(*base, "--config", str(config), "-q")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ground_truth"] == "instances"
    config.write_text(f"responses: {responses}\ncoco_captions: {annotations / 'captions_val2014.json'}\n")
    done = run_in_process(*base, "--config", str(config), "--no-captions")
    assert done.returncode == 2 and "--coco-captions and --no-captions exclude each other" in done.stderr
    config.write_text("temprature: 0.5\n")
    done = run_in_process(*base, "--config", str(config))
    assert done.returncode == 2 and "eval-chair has no option temprature" in done.stderr
