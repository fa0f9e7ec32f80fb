"""Response generation (AMBER's queries through the respond stage): a fake LVLM for exact behaviour, then the
tiny LLaVA end to end through the CLI."""

from __future__ import annotations

import json

import pytest

from clipdpo_cli.eval.amber.data import load_amber
from clipdpo_cli.eval.amber.queries import DEFAULT_YES_NO_SUFFIX, query_records
from clipdpo_cli.eval.amber.run import AmberEvalSettings, run_eval
from clipdpo_cli.stages.respond import RespondSettings, respond_records
from tests.conftest import invoke_cli as invoke
from tests.eval.amber.amber_helpers import run_cli


class FakeLvlm:
    """Answers by rule and records every call (image sizes identify the stand-in images)."""

    name = "fake-lvlm"

    def __init__(self):
        self.calls = []

    def generate(self, images, prompts, max_new_tokens, temperature, top_p, seed):
        self.calls.append(("generate", [im.size for im in images], list(prompts), max_new_tokens, seed))
        return [" yes, it is." if "sky" in p else "A dog on the grass." if "Describe" in p else "Maybe"
                for p in prompts]  # fmt: skip

    def next_token_probs(self, images, prompts, candidates):
        self.calls.append(("probs", [im.size for im in images], list(prompts), list(candidates)))
        return [{"Yes": 0.3, "yes": 0.2, "No": 0.45, "no": 0.0} if "cat" in p else
                {"Yes": 0.1, "yes": 0.0, "No": 0.05, "no": 0.01} for p in prompts]  # fmt: skip


@pytest.fixture()
def data(tiny_amber):
    return load_amber(tiny_amber)


def _run(data, tiny_amber, **kw):
    lvlm = FakeLvlm()
    settings = kw.pop("settings", RespondSettings(batch_size=4, max_new_tokens=20, seed=0, workers=0))
    suffix = kw.pop("suffix", DEFAULT_YES_NO_SUFFIX)
    queries = query_records(data, kw.pop("task", "all"), f"{tiny_amber}/image", suffix)
    out = list(respond_records(queries, lvlm, settings))
    assert len(out) == len(queries)
    return lvlm, out


@pytest.fixture()
def fake_model(monkeypatch):
    """run_eval's model is one FakeLvlm (its calls are kept)."""
    import clipdpo_cli.models.lvlm as lvlm_module

    lvlm = FakeLvlm()
    monkeypatch.setattr(lvlm_module, "load_lvlm", lambda name, device, dtype, **kw: lvlm)
    return lvlm


def _ids(path):
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_amber_generate_prob_mode(data, tiny_amber):
    lvlm, out = _run(data, tiny_amber)
    assert [r["id"] for r in out] == list(range(1, 22))  # descriptions first, then the yes/no questions
    by_id = {r["id"]: r for r in out}
    assert by_id[1]["response"] == "A dog on the grass." and by_id[1]["mode"] == "describe"
    # existence question "Is there a cat ...": p_yes = 0.3 + 0.2 = 0.5 > p_no = 0.45
    assert by_id[13]["response"] == "Yes" and by_id[13]["p_yes"] == 0.5 and by_id[13]["p_no"] == 0.45
    assert by_id[4]["response"] == "Yes" and by_id[4]["task"] == "attribute"  # 0.1 > 0.06
    assert {r["model"] for r in out} == {"fake-lvlm"}
    prob_calls = [c for c in lvlm.calls if c[0] == "probs"]
    assert [len(c[2]) for c in prob_calls] == [4, 4, 4, 4, 2]  # 18 questions in batches of 4
    assert prob_calls[0][3] == ["Yes", "No", "yes", "no"]
    suffix = "\nAnswer the question using a single word or phrase."
    assert prob_calls[0][2][0] == "Is the sky clear in this image?" + suffix
    describe = [c for c in lvlm.calls if c[0] == "generate"]
    assert describe[0][3] == 20 and describe[0][4] == [1, 2, 3]  # seed + query id per row
    assert describe[0][1] == [(64, 48), (80, 48), (96, 48)]  # each query gets its own image


def test_amber_generate_free_yes_no_mode(data, tiny_amber):
    settings = RespondSettings(yes_no="generate", batch_size=8, seed=0)
    lvlm, out = _run(data, tiny_amber, settings=settings, task="attribute", suffix=" Yes or no?")
    by_id = {r["id"]: r for r in out}
    assert by_id[4]["response"] == "Yes" and by_id[4]["text"] == " yes, it is."  # normalised, raw kept
    assert by_id[7]["response"] == "Maybe" and by_id[7]["mode"] == "yes_no_generate"
    assert all(c[3] == 8 for c in lvlm.calls)  # a short budget for yes/no answers
    assert lvlm.calls[0][2][0].endswith("image? Yes or no?")


def test_amber_generate_shards_and_resume(fake_model, tiny_amber, tmp_path):
    def generate(out, **kw):
        assert run_eval(AmberEvalSettings(amber_root=tiny_amber, model="fake", responses_out=str(out),
                                    generate_only=True, quiet=True, **kw)) is None  # fmt: skip
        return [json.loads(line) for line in out.read_text().splitlines()]

    whole = generate(tmp_path / "whole.jsonl")
    parts = [generate(tmp_path / f"part{k}.jsonl", shard=f"{k}/2") for k in range(2)]
    ids = sorted(r["id"] for part in parts for r in part)
    assert ids == sorted(r["id"] for r in whole)  # the shards partition the queries
    images = [{r["image"] for r in part} for part in parts]
    assert not images[0] & images[1]  # by image
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in whole[:5]) + '{"id": 6, "resp')  # killed mid-line
    fake_model.calls.clear()
    rest = generate(path, resume=True)
    assert path.read_text().endswith("}\n")  # the half-written line is gone
    assert [r["id"] for r in rest] == list(range(1, 22))  # 1-5 kept, 6-21 answered once
    assert sum(len(c[2]) for c in fake_model.calls) == 16  # only the missing ones were asked


def test_amber_generate_missing_image(fake_model, tiny_amber, tmp_path):
    from clipdpo_cli.io.errors import RecordFailure

    with pytest.raises(RecordFailure, match="image not found"):
        run_eval(AmberEvalSettings(amber_root=tiny_amber, model="fake", task="generative",
                                   amber_images=str(tmp_path), quiet=True))  # fmt: skip


@pytest.fixture(scope="session")
def tiny_llava_model(tiny_llava_path: str) -> str:
    return tiny_llava_path


@pytest.mark.slow
def test_amber_tiny_llava_end_to_end(tiny_llava_model, tiny_amber, tmp_path):
    responses = tmp_path / "responses.jsonl"
    common = ("eval-amber", "--amber-root", tiny_amber, "--model", tiny_llava_model, "--device", "cpu",
              "--max-new-tokens", "6", "-r", str(responses))  # fmt: skip
    proc = run_cli(*common)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    lines = [json.loads(line) for line in responses.read_text().splitlines()]
    assert [r["id"] for r in lines] == list(range(1, 22))
    assert all(r["response"] in ("Yes", "No") and 0 <= r["p_yes"] <= 1 for r in lines if r["id"] > 3)
    assert metrics["responses"]["scored"] == 21 and metrics["complete"] is True
    assert metrics["model"] == tiny_llava_model and metrics["yes_no"] == "prob"
    assert "clipdpo eval-amber: 21 in, 21 out" in proc.stderr and "CHAIR" in proc.stderr  # 21 generated
    # scoring the written file gives the same figures
    rescored = json.loads(run_cli("eval-amber", "--amber-root", tiny_amber, "--responses", str(responses),
                                  "-q").stdout)  # fmt: skip
    for section in ("generative", "discriminative", "existence", "attribute", "relation"):
        assert rescored[section] == metrics[section]
    # the same command in-process (no second torch start-up): resuming a complete file generates
    # nothing and scores the same
    proc = invoke(*common, "--resume")
    assert proc.exit_code == 0 and "0 in, 0 out; 21 already done (resume)" in proc.stderr
    assert json.loads(proc.stdout)["discriminative"] == metrics["discriminative"]
    assert len(responses.read_text().splitlines()) == 21
    # the same in three steps: export the queries, `clipdpo respond`, score the responses
    queries, answered = tmp_path / "q.jsonl", tmp_path / "answered.jsonl"
    assert invoke("eval-amber", "--amber-root", tiny_amber, "--write-queries", str(queries)).exit_code == 0
    proc = invoke("respond", str(queries), "-m", tiny_llava_model, "--device", "cpu", "--max-new-tokens", "6",
                  "--seed", "0", "-o", str(answered))  # fmt: skip
    assert proc.exit_code == 0, proc.stderr
    assert answered.read_text() == responses.read_text()
    proc = invoke("eval-amber", "--amber-root", tiny_amber, "--responses", str(answered), "-q")
    assert {k: v for k, v in json.loads(proc.stdout).items() if k not in ("model", "yes_no")} == {
        k: v for k, v in metrics.items() if k not in ("model", "yes_no")
    }
    # two shards in free-generation mode: each writes its images' answers and prints no metrics
    for k in range(2):
        proc = invoke("eval-amber", "--amber-root", tiny_amber, "--model", tiny_llava_model,
                      "--device", "cpu", "--task", "existence", "--yes-no", "generate", "--shard", f"{k}/2",
                      "-r", str(tmp_path / f"shard{k}.jsonl"))  # fmt: skip
        assert proc.exit_code == 0, proc.stderr
        assert proc.stdout == ""
    shard_ids = [json.loads(line)["id"] for k in range(2)
                 for line in (tmp_path / f"shard{k}.jsonl").read_text().splitlines()]  # fmt: skip
    assert sorted(shard_ids) == [13, 14, 15]


def test_amber_run_eval_with_fake_model(fake_model, tiny_amber, tmp_path, capsys):
    """run_eval wiring without a real model: --limit, in-memory responses, --generate-only."""
    result = run_eval(AmberEvalSettings(amber_root=tiny_amber, model="fake", limit=1, quiet=True))
    # one query per part: description 1, attribute 4, existence 13, relation 16
    assert result["responses"]["scored"] == 4 and result["complete"] is False
    assert result["generative"]["counts"]["mentions"] == 2  # "A dog on the grass."
    assert result["existence"]["counts"]["answered_no"] == 0  # p_yes 0.5 > p_no 0.45 for the cat
    assert json.loads(capsys.readouterr().out)["responses"]["scored"] == 4
    out = tmp_path / "r.jsonl"
    # generating only needs no NLP backend: --nlp official works without spaCy installed
    assert run_eval(AmberEvalSettings(amber_root=tiny_amber, model="fake", task="relation",
                                      responses_out=str(out), generate_only=True, quiet=True,
                                      nlp="official")) is None  # fmt: skip
    assert capsys.readouterr().out == ""
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [16, 17, 18, 19, 20, 21]


def test_amber_generation_prints_progress_lines(monkeypatch, tiny_amber, capsys):
    """Off a terminal, generation prints a line every --progress-every seconds: responses of the total."""
    import time

    import clipdpo_cli.models.lvlm as lvlm_module

    class SlowLvlm(FakeLvlm):
        def next_token_probs(self, images, prompts, candidates):
            time.sleep(0.1)
            return super().next_token_probs(images, prompts, candidates)

    monkeypatch.setattr(lvlm_module, "load_lvlm", lambda name, device, dtype, **kw: SlowLvlm())
    opts = AmberEvalSettings(amber_root=tiny_amber, model="fake", task="discriminative", progress_every=0.05,
                       batch_size=2)  # fmt: skip
    run_eval(opts)
    lines = [line for line in capsys.readouterr().err.splitlines() if "/18 responses (" in line]
    assert lines and all(line.startswith("clipdpo eval-amber: ") for line in lines)
    assert "responses/s" in lines[-1]


def test_amber_write_queries_exports_respond_records(tiny_amber):
    """--write-queries: the task's queries as respond records, yes/no ones marked and suffixed."""
    from clipdpo_cli.io.errors import UsageError

    proc = invoke("eval-amber", "--amber-root", tiny_amber, "--write-queries", "-", "--task", "attribute",
                  "--yes-no-suffix", " Yes or no?", "--limit", "2")  # fmt: skip
    assert proc.exit_code == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in records] == [4, 5]  # the first two of the part
    assert records[0] == {"id": 4, "image": f"{tiny_amber}/image/AMBER_1.jpg", "task": "attribute",
                          "query": "Is the sky clear in this image?",
                          "prompt": "Is the sky clear in this image? Yes or no?", "yes_no": True}  # fmt: skip
    assert "2 queries written" in proc.stderr
    describe = query_records(load_amber(tiny_amber), "generative", "imgs")
    assert describe[0] == {"id": 1, "image": "imgs/AMBER_1.jpg", "prompt": "Describe this image.",
                           "query": "Describe this image.", "task": "generative"}  # fmt: skip
    with pytest.raises(UsageError, match="--write-queries only writes the queries"):
        invoke("eval-amber", "--amber-root", tiny_amber, "--write-queries", "-", "--model", "m")


def test_amber_through_an_openai_compatible_server(tiny_amber, tmp_path):
    """eval-amber --model --engine openai: every query one request (yes/no ones by top_logprobs), then scored
    (the stand-in server of tests/models/fake_openai_server.py plays vLLM)."""
    import math

    from tests.models.fake_openai_server import FakeServer, prompt_of

    top = [("Yes", math.log(0.3)), ("No", math.log(0.6))]
    responses = tmp_path / "r.jsonl"
    with FakeServer(reply=lambda body: "A dog on the grass.", top_logprobs=top) as server:
        proc = invoke("eval-amber", "--amber-root", tiny_amber, "--model", "served", "--engine", "openai",
                      "--base-url", server.url, "-r", str(responses), "-q")  # fmt: skip
    assert proc.exit_code == 0, proc.stderr
    lines = [json.loads(line) for line in responses.read_text().splitlines()]
    assert [r["id"] for r in lines] == list(range(1, 22)) and len(server.bodies) == 21
    assert [r["response"] for r in lines[:3]] == ["A dog on the grass."] * 3
    assert {(r["response"], r["p_yes"], r["p_no"]) for r in lines[3:]} == {("No", 0.3, 0.6)}
    asked = [b for b in server.bodies if b.get("logprobs")]
    assert len(asked) == 18 and all(prompt_of(b).endswith(DEFAULT_YES_NO_SUFFIX) for b in asked)
    assert json.loads(proc.stdout)["responses"]["scored"] == 21
