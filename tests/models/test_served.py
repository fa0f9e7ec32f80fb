"""`--engine openai` (models/served.py) against a minimal OpenAI-compatible server (fake_openai_server.py).

The fake stands in for vLLM where `transformers serve` cannot (logprobs, a per-request chat template) and
for faults (503s, a server that dies mid-run, none at all). Parity with the in-process engine against a
real `transformers serve` is tests/models/families/test_served_parity.py.
"""

from __future__ import annotations

import json
import math
import os
import random
import time

import pytest

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.stages.ask import SYSTEM_PROMPT
from clipdpo_cli.stages.batched import Group, batching, run_in_batches
from clipdpo_cli.stages.caption import CaptionSettings, caption_jobs
from clipdpo_mini.serving import free_port
from tests.conftest import run_in_process
from tests.models.fake_openai_server import FakeServer, echo_reply, prompt_of

COLORS = {"a.png": (255, 0, 0), "b.png": (0, 128, 0), "c.png": (0, 0, 255), "d.png": (255, 255, 255)}
PROMPTS = ("Describe it.", "What is in the picture?")


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    root.mkdir()
    for i, (name, color) in enumerate(COLORS.items()):
        Image.new("RGB", (30 + 4 * i, 20), color).save(root / name)
    return root


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return str(path)


def read(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def caption(folder, server_url, out, *extra: str):
    return run_in_process(
        "caption",
        str(folder),
        "-m",
        "served",
        "--engine",
        "openai",
        "--base-url",
        server_url,
        "-o",
        str(out),
        "-q",
        *extra,
    )


def expected_captions(records: list[dict], settings: CaptionSettings) -> list[tuple[str, str]]:
    """(id, text) of a complete run whose server answers echo_reply, for the images of `records`."""
    out = []
    for image in dict.fromkeys(r["image"] for r in records):
        color = COLORS[os.path.basename(image)]
        for job in caption_jobs(image, "served", settings):
            out.append((job.id, f"{job.prompt} | seed={job.seed} | pixel={color}"))
    return out


SAMPLED = CaptionSettings(
    prompts=PROMPTS, samples_per_prompt=2, temperature=0.5, top_p=0.9, max_new_tokens=20, seed=7
)
SAMPLED_ARGS = (
    "--samples-per-prompt",
    "2",
    "--temperature",
    "0.5",
    "--top-p",
    "0.9",
    "--max-new-tokens",
    "20",
    "--seed",
    "7",
)


def test_caption_sends_one_request_per_row_with_its_seed_and_the_images_pixels(
    folder, prompts_file, tmp_path
):
    out = tmp_path / "c.jsonl"
    with FakeServer() as server:
        result = caption(
            folder, server.url, out, "--prompts", prompts_file, "--concurrency", "1", *SAMPLED_ARGS
        )
    assert result.returncode == 0, result.stderr
    records = read(out)
    assert [(r["id"], r["text"]) for r in records] == expected_captions(records, SAMPLED)
    assert [os.path.basename(r["image"]) for r in records] == [n for n in sorted(COLORS) for _ in range(4)]
    assert all(r["model"] == "served" and r["temperature"] == 0.5 for r in records)
    # one request per caption; the rows of an image one after another (the server can share its tokens)
    assert len(server.bodies) == len(records) == 16
    assert [echo_reply(b).split("pixel=")[1] for b in server.bodies] == [
        str(COLORS[n]) for n in sorted(COLORS) for _ in range(4)
    ]
    body = server.bodies[0]
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"]) == ("served", 20, 0.5, 0.9)
    assert body["messages"][0]["content"][0]["type"] == "image_url"  # the image, then the prompt
    assert body["messages"][0]["content"][1] == {"type": "text", "text": "Describe it."}
    assert "chat_template" not in body and "n" not in body


def test_many_requests_in_flight_still_write_in_input_order(folder, prompts_file, tmp_path):
    rng = random.Random(0)
    delays = [rng.uniform(0, 0.05) for _ in range(16)]
    in_flight, peak = [0], [0]

    def slow(body):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        time.sleep(delays[len(server.bodies) % 16])
        in_flight[0] -= 1
        return echo_reply(body)

    out = tmp_path / "c.jsonl"
    with FakeServer(reply=slow) as server:
        result = caption(
            folder, server.url, out, "--prompts", prompts_file, "--concurrency", "4", *SAMPLED_ARGS
        )
    assert result.returncode == 0, result.stderr
    records = read(out)
    assert [(r["id"], r["text"]) for r in records] == expected_captions(records, SAMPLED)
    assert 2 <= peak[0] <= 4  # several requests at once, never more than --concurrency


def test_run_in_batches_in_flight_keeps_order_and_marks_failed_batches():
    def run(items):
        time.sleep(random.Random(items[0][1]).uniform(0, 0.02))
        if items[0][1] == 41:
            raise BadRecord("server said no", "server error 503")
        return [job * 10 for _, job in items]

    groups = [Group({"n": n}, list(range(10 * n, 10 * n + n))) for n in (3, 1, 4, 2)]
    out = list(run_in_batches(iter(groups), 1, run, in_flight=3))
    assert [g.record["n"] for g in out] == [3, 1, 4, 2]
    assert [g.error is None for g in out] == [True, True, False, True]
    assert out[2].error.reason == "server error 503"
    assert out[0].results == [300, 310, 320] and out[3].results == [200, 210]
    assert batching(object(), 8) == (8, 1)  # in-process: batches of --batch-size, one at a time
    assert batching(type("Served", (), {"concurrency": 5})(), 8) == (1, 5)
    assert batching(type("Served", (), {"concurrency": 1})(), 8) == (1, 1)  # a row's failure stays its own


def test_503_then_200_is_retried(folder, prompts_file, tmp_path):
    out = tmp_path / "c.jsonl"
    with FakeServer(fail=2) as server:
        result = caption(
            folder,
            server.url,
            out,
            "--prompts",
            prompts_file,
            "--temperature",
            "0",
            "--concurrency",
            "1",
            "--retries",
            "2",
        )
    assert result.returncode == 0, result.stderr
    assert len(read(out)) == 8 and len(server.bodies) == 8 + 2


def test_a_request_that_keeps_failing_is_a_bad_record(folder, prompts_file, tmp_path):
    out = tmp_path / "c.jsonl"
    with FakeServer(fail=10**6) as server:
        failed = caption(folder, server.url, out, "--prompts", prompts_file, "--retries", "1")
        skipped = run_in_process(
            "caption",
            str(folder),
            "-m",
            "served",
            "--engine",
            "openai",
            "--base-url",
            server.url,
            "--prompts",
            prompts_file,
            "--retries",
            "0",
            "--on-error",
            "skip",
            "-o",
            str(tmp_path / "s.jsonl"),
        )
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1 and "answered 503 after 1 retries" in failed.stderr, failed.stderr
    assert skipped.returncode == 0, skipped.stderr
    assert read(tmp_path / "s.jsonl") == []
    assert "4 in, 0 out; skipped bad 4 server error 503" in skipped.stderr, skipped.stderr


def test_no_server_is_one_line_before_any_work(folder, tmp_path):
    out = tmp_path / "c.jsonl"
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = caption(folder, url, out, "--retries", "0")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"no OpenAI-compatible server answers at {url}" in result.stderr
    assert not out.exists()
    unset = run_in_process("caption", str(folder), "--engine", "openai", env={"OPENAI_BASE_URL": ""})
    assert unset.returncode == 2 and "--engine openai needs --base-url URL" in unset.stderr


def test_a_server_killed_mid_run_loses_nothing_and_resume_continues_exactly(folder, prompts_file, tmp_path):
    out, full = tmp_path / "c.jsonl", tmp_path / "full.jsonl"
    with FakeServer(stop_after=5) as server:
        killed = caption(
            folder,
            server.url,
            out,
            "--prompts",
            prompts_file,
            "--concurrency",
            "2",
            "--retries",
            "0",
            *SAMPLED_ARGS,
        )
    assert killed.returncode == 1, killed.stderr
    assert "stopped answering" in killed.stderr and "--resume" in killed.stderr
    assert killed.stderr.count("\n") == 1, killed.stderr
    partial = out.read_bytes()
    assert partial.endswith(b"\n") or partial == b""
    written = read(out)
    assert 0 < len(written) < 16 and len(written) % 4 == 0  # whole images only
    with FakeServer() as again:
        resumed = caption(folder, again.url, out, "--prompts", prompts_file, "--resume", *SAMPLED_ARGS)
    assert resumed.returncode == 0, resumed.stderr
    assert len(again.bodies) == 16 - len(written)  # only what was missing is asked again
    with FakeServer() as reference:
        caption(folder, reference.url, full, "--prompts", prompts_file, *SAMPLED_ARGS)
    assert out.read_bytes() == full.read_bytes()


@pytest.fixture
def queries(tmp_path, folder):
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": 1, "image": str(folder / "a.png"), "prompt": "Is there a dog?", "yes_no": True},
        {"id": 2, "image": str(folder / "b.png"), "prompt": "Describe the image."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_yes_no_probabilities_from_top_logprobs(queries, tmp_path):
    out = tmp_path / "r.jsonl"
    top = [
        ("Yes", math.log(0.5)),
        (" yes", math.log(0.1)),
        ("No", math.log(0.2)),
        ("\u2581no", math.log(0.05)),
        ("Maybe", math.log(0.1)),
        ("Yesterday", math.log(0.01)),
    ]
    with FakeServer(top_logprobs=top) as server:
        result = run_in_process(
            "respond",
            str(queries),
            "-m",
            "served",
            "--engine",
            "openai",
            "--base-url",
            server.url,
            "-o",
            str(out),
            "--concurrency",
            "1",
        )
    assert result.returncode == 0, result.stderr
    yes, describe = read(out)
    assert (yes["response"], yes["mode"], yes["p_yes"], yes["p_no"]) == ("Yes", "yes_no_prob", 0.6, 0.25)
    assert describe["response"] == "Describe the image. | seed=None | pixel=(0, 128, 0)"
    asked = server.bodies[0]
    assert (asked["max_tokens"], asked["logprobs"], asked["top_logprobs"], asked["temperature"]) == (
        1,
        True,
        20,
        0,
    )


def test_yes_no_without_logprobs_is_one_line_pointing_to_generate(queries, tmp_path):
    (tmp_path / "r.jsonl").write_text('{"id": "last run"}\n')
    with FakeServer(top_logprobs=None) as server:
        refused = run_in_process(
            "respond",
            str(queries),
            "-m",
            "served",
            "--engine",
            "openai",
            "--base-url",
            server.url,
            "-o",
            str(tmp_path / "r.jsonl"),
        )
        generated = run_in_process(
            "respond",
            str(queries),
            "-m",
            "served",
            "--engine",
            "openai",
            "--base-url",
            server.url,
            "--yes-no",
            "generate",
            "-o",
            str(tmp_path / "g.jsonl"),
        )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "returned no logprobs" in refused.stderr and "--yes-no generate" in refused.stderr
    assert (tmp_path / "r.jsonl").read_text() == '{"id": "last run"}\n'  # refused before a record: kept
    assert generated.returncode == 0, generated.stderr
    assert [r["mode"] for r in read(tmp_path / "g.jsonl")] == ["yes_no_generate", "describe"]


def test_chat_template_goes_with_the_request_or_is_refused_in_one_line(folder, tmp_path):
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with FakeServer() as server:
        sent = caption(folder, server.url, tmp_path / "c.jsonl", "--chat-template", str(template))
    assert sent.returncode == 0, sent.stderr
    assert {b["chat_template"] for b in server.bodies} == {template.read_text()}
    assert all("chat_template_sha256" in r for r in read(tmp_path / "c.jsonl"))
    with FakeServer(refuse_fields=("chat_template",)) as server:
        refused = caption(folder, server.url, tmp_path / "r.jsonl", "--chat-template", str(template))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert (
        "does not take --chat-template" in refused.stderr
        and "--trust-request-chat-template" in refused.stderr
    )
    with FakeServer(owned_by="sglang") as server:  # SGLang ignores the field: refused before any request
        sglang = caption(folder, server.url, tmp_path / "g.jsonl", "--chat-template", str(template))
    assert sglang.returncode == 2 and "SGLang takes no chat template with a request" in sglang.stderr
    assert server.bodies == [] and not (tmp_path / "g.jsonl").exists()
    pixels = caption(folder, "http://127.0.0.1:9/v1", tmp_path / "p.jsonl", "--max-pixels", "1000")
    assert pixels.returncode == 2 and "--max-pixels is the in-process engine's" in pixels.stderr


def _questions(body) -> str:
    return json.dumps(
        {
            "questions": [
                {"question": f"Q{i} {prompt_of(body)[-12:]}?", "answer_pos": "red", "answer_neg": "blue"}
                for i in range(2)
            ]
        }
    )


@pytest.fixture
def captions(tmp_path, folder):
    path = tmp_path / "caps.jsonl"
    rows = [
        {"id": f"{n}-{k}", "image": str(folder / n), "kind": "caption", "text": f"a {n} thing number {k}"}
        for n in sorted(COLORS)
        for k in range(2)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("refuse_system", [False, True])
def test_ask_sends_the_system_turn_or_merges_it_where_the_template_refuses_one(
    captions, tmp_path, refuse_system
):
    out = tmp_path / "qa.jsonl"
    with FakeServer(reply=_questions, refuse_system=refuse_system) as server:
        result = run_in_process(
            "ask",
            str(captions),
            "-m",
            "served",
            "--engine",
            "openai",
            "--base-url",
            server.url,
            "--seed",
            "3",
            "-o",
            str(out),
            "--concurrency",
            "3",
        )
    assert result.returncode == 0, result.stderr
    records = read(out)
    assert len(records) == 8 and {r["kind"] for r in records} == {"qa"}
    assert [r["question"][:2] for r in records] == ["Q0", "Q1"] * 4
    bodies = server.bodies
    if refuse_system:  # one refused probe, then every request with the system text atop the user turn
        assert len(bodies) == 5 and bodies[0]["messages"][0]["role"] == "system"
        assert all(
            len(b["messages"]) == 1 and b["messages"][0]["content"].startswith(SYSTEM_PROMPT + "\n\n")
            for b in bodies[1:]
        )
    else:
        assert len(bodies) == 4
        assert all([m["role"] for m in b["messages"]] == ["system", "user"] for b in bodies)
        assert all(b["messages"][0]["content"] == SYSTEM_PROMPT for b in bodies)
    assert len({b["seed"] for b in bodies}) == 4


def test_perturb_llm_through_a_server(captions, tmp_path):
    out = tmp_path / "p.jsonl"

    def rewrite(body):
        return json.dumps({"caption": prompt_of(body).split("\n")[-1][:20] + " and a dog."})

    with FakeServer(reply=rewrite) as server:
        result = run_in_process(
            "perturb",
            str(captions),
            "--method",
            "llm",
            "-m",
            "served",
            "--engine",
            "openai",
            "--base-url",
            server.url,
            "--types",
            "existence",
            "-o",
            str(out),
        )
    assert result.returncode == 0, result.stderr
    records = read(out)
    assert [r["hallucination"] for r in records] == ["none", "existence"] * 8
    assert len(server.bodies) == 8
    rules = run_in_process("perturb", str(captions), "--engine", "openai")
    assert rules.returncode == 2 and "are for --method llm" in rules.stderr


def test_ctrl_c_does_not_wait_for_the_requests_in_flight(folder, tmp_path):
    """Ctrl-C ends a run at once (exit 130, whole lines), not when the server's slow answers come back."""
    import signal
    import subprocess
    import sys

    from tests.conftest import cli_env

    def slow(body):
        time.sleep(60)
        return echo_reply(body)

    out = tmp_path / "c.jsonl"
    with FakeServer(reply=slow) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipdpo_cli", "caption", str(folder), "-m", "served",
             "--engine", "openai", "--base-url", server.url, "-o", str(out)],
            stderr=subprocess.PIPE, text=True, env=cli_env(),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while len(server.bodies) < 4 and time.monotonic() < deadline:  # every image's request in flight
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)  # the old thread pool waited for the 60 s answers
    assert proc.returncode == 130, err
    assert "interrupted after 0 records written" in err
    assert not out.exists()  # stopped before its first record: -o is left as it was (here: no file)


def test_a_refused_request_is_a_bad_record_and_an_unknown_model_stops_the_run(folder, tmp_path):
    """400 (e.g. a prompt over the context) is that record's fault: not retried, a bad record; 404 (no such
    model) is the run's: one line, exit 1."""
    out = tmp_path / "c.jsonl"
    with FakeServer(fail=1, fail_status=400) as server:
        result = caption(folder, server.url, out, "--concurrency", "1", "--on-error", "skip", "--temperature",
                         "0")  # fmt: skip
        assert len(server.bodies) == 4 * 5  # the default five prompts; the refused request is not retried
    assert result.returncode == 0, result.stderr
    names = [os.path.basename(r["image"]) for r in read(out)]
    assert names == [n for n in sorted(COLORS)[1:] for _ in range(5)]  # only the refused row's image is out
    with FakeServer() as server:
        unknown = run_in_process("caption", str(folder), "-m", "other", "--engine", "openai", "--base-url",
                                 server.url, "-o", str(tmp_path / "u.jsonl"))  # fmt: skip
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1, unknown.stderr
    assert "has no model 'other'" in unknown.stderr and "-m names the served model" in unknown.stderr
