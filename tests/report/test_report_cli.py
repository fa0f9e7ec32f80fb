"""`clipdpo report`: the page holds every section its inputs allow, needs nothing from elsewhere, writes
the PNG files, leaves out what it was not given, and fails in one line."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import cli_env, invoke_cli, run_in_process
from tests.report.run_files import report_args, write_run

pytest.importorskip("matplotlib", reason="clipdpo report needs the 'report' extra (matplotlib)")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Links(HTMLParser):
    """Every URL-bearing attribute of a page, and its section ids."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if (
                name in ("src", "href", "srcset", "poster", "data", "action", "background")
                and value is not None
            ):
                self.urls.append((tag, name, value))
        if tag == "section":
            self.sections.append(dict(attrs).get("id") or "")


def parse(html: str) -> Links:
    links = Links()
    links.feed(html)
    return links


def assert_self_contained(html: str) -> None:
    links = parse(html)
    for tag, name, value in links.urls:
        assert value.startswith(("data:", "#")), f"<{tag} {name}={value[:60]!r}> is not embedded"
    assert not re.search(r"(?i)\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", html)
    assert not re.search(r"(?i)url\(\s*[\"']?(?!data:)", html), "a CSS url() that is not a data URL"
    assert "@import" not in html and "<script" not in html.lower()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def full_report(run: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    out = tmp_path_factory.mktemp("report")
    html, figs = out / "report.html", out / "figs"
    result = invoke_cli(
        "report",
        *report_args(run),
        "-o",
        str(html),
        "--png-dir",
        str(figs),
    )
    assert result.exit_code == 0, result.output
    return html, figs, result.stderr


def test_full_report_has_every_section_and_is_self_contained(full_report):
    html_path, figs, stderr = full_report
    html = html_path.read_text()
    links = parse(html)
    assert links.sections == [
        "scores-captions",
        "scores-questions",
        "scores-answers",
        "drops",
        "pairs",
        "examples",
        "training",
        "amber",
        "zeroshot",
    ]
    assert_self_contained(html)
    images = [v for tag, name, v in links.urls if tag == "img" and name == "src"]
    assert len(images) == 8 + 6  # figures + example thumbnails
    for src in images:
        mime, data = src.split(",", 1)
        payload = base64.b64decode(data)
        assert (
            payload.startswith(PNG_MAGIC) if mime == "data:image/png;base64" else payload[:2] == b"\xff\xd8"
        )
    assert f"wrote {html_path}" in stderr and "8 PNG files" in stderr
    assert sorted(p.name for p in figs.iterdir()) == sorted(
        f"{n}.png"
        for n in (
            "scores-captions",
            "scores-questions",
            "scores-answers",
            "drops",
            "pairs",
            "training",
            "amber",
            "zeroshot",
        )
    )
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in figs.iterdir())


def test_the_page_carries_no_absolute_local_path(full_report, run):
    """The inputs are named by absolute paths outside the current folder: the page lists their names."""
    html = full_report[0].read_text()
    root = os.path.commonpath([str(p) for p in run.values()])
    assert os.path.isabs(root) and root not in html and str(Path(root).parent) not in html
    assert f"<li>pairs: <code>{run['pairs'].name}</code></li>" in html


def test_shown_paths(tmp_path, monkeypatch):
    from clipdpo_cli.report.inputs import shown_path

    monkeypatch.chdir(tmp_path)
    assert shown_path(str(tmp_path / "run1" / "scored.jsonl")) == os.path.join("run1", "scored.jsonl")
    assert shown_path("run1/pairs.jsonl") == os.path.join("run1", "pairs.jsonl")
    assert shown_path("/elsewhere/models/out/train_summary.json") == "train_summary.json"
    assert shown_path("../up/x.jsonl") == "x.jsonl" and shown_path("-") == "-"
    assert shown_path(str(tmp_path)) == tmp_path.name


def test_full_report_tables(full_report, run):
    html = full_report[0].read_text()
    # thresholds found in the rejects' reasons, and the exact share below them
    assert "threshold 28 from the rejects&#x27; reasons" in html
    assert "threshold 25 from the rejects&#x27; reasons" in html
    below = sum(1 for line in run["rejects"].read_text().splitlines() if '"caption score < 28"' in line)
    captions = html.split('<section id="scores-captions">')[1].split("</section>")[0]
    cells = re.findall(
        r'<tr><td class="">(\w+)</td><td class="num">(\d+)</td><td class="num">[-\d.]+</td>'
        r'<td class="num">(\d+)</td>',
        captions,
    )
    assert [c for c, _, _ in cells] == ["text", "people", "objects", "scenes"]
    assert sum(int(n) for _, n, _ in cells) == 120 and sum(int(b) for _, _, b in cells) == below > 0
    assert "caption score &lt; 28" in html and "caption &gt; 60 words" in html
    # AMBER: labels, values, best per column in bold (CHAIR lower is better), the partial result flagged
    assert '<td class="">base</td>' in html and "out/llava-clipdpo" in html
    assert '<td class="num best">5.3</td>' in html and '<td class="num best">87.3</td>' in html
    assert "amber_partial: partial result, 1200 of 15220 responses scored" in html
    # zero-shot: one baseline row for two files with the same baseline
    assert html.count("siglip-so400m (image, CLIP baseline)") == 1
    assert "llava-hf/llava-1.5-7b-hf (caption → text)" in html
    # training: both runs, first/last loss of the dpo run (loss 0.6931 - 0.01 step, logged every 2 steps)
    assert '<td class="">dpo</td>' in html and '<td class="">cdpo</td>' in html
    assert '<td class="num">0.6731</td><td class="num">0.2931</td>' in html


def test_missing_inputs_leave_their_sections_out(run, tmp_path: Path):
    html_path = tmp_path / "amber-only.html"
    result = invoke_cli("report", "--amber", str(run["amber_base"]), "-o", str(html_path), "-q")
    assert result.exit_code == 0 and result.stderr == ""
    html = html_path.read_text()
    assert parse(html).sections == ["amber"]
    assert_self_contained(html)
    # no threshold anywhere: none is drawn, and the page says how to get one
    html_path = tmp_path / "scores.html"
    assert invoke_cli("report", "--scored", str(run["scored"]), "-o", str(html_path), "-q").exit_code == 0
    html = html_path.read_text()
    assert parse(html).sections == ["scores-captions", "scores-questions", "scores-answers"]
    assert "no threshold drawn: give --min-caption-score" in html
    html_path = tmp_path / "given.html"
    args = ("--min-caption-score", "30", "--min-question-score", "none")
    assert (
        invoke_cli("report", "--scored", str(run["scored"]), *args, "-o", str(html_path), "-q").exit_code == 0
    )
    html = html_path.read_text()
    assert (
        "threshold 30 from --min-caption-score" in html
        and "no threshold drawn: give --min-question-score" in html
    )


def test_missing_image_is_a_note_in_its_card(tmp_path: Path):
    pairs = tmp_path / "pairs.jsonl"
    pair = {
        "id": "p",
        "image": "gone.jpg",
        "kind": "caption",
        "prompt": "Describe.",
        "chosen": "a <b>",
        "rejected": "c",
        "chosen_score": 30.0,
        "rejected_score": 27.0,
        "margin": 3.0,
    }
    pairs.write_text(json.dumps(pair) + "\n")
    html_path = tmp_path / "r.html"
    assert invoke_cli("report", "--pairs", str(pairs), "-o", str(html_path), "-q").exit_code == 0
    html = html_path.read_text()
    # the tooltip names the path tried relative to the current folder, never the absolute one
    card = '<div class="noimg" title="image not found: gone.jpg">image not found: gone.jpg</div>'
    assert card in html and os.getcwd() not in html
    assert "a &lt;b&gt;" in html  # texts are escaped


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        ((), "nothing to report: give at least one of --scored", 2),
        (("--amber", "nope.json"), "input file not found: nope.json", 1),
        (
            ("--bin-width", "0.03", "--scored", "x.jsonl"),
            "--bin-width must be a positive multiple of 0.05",
            2,
        ),
        (
            ("--min-caption-score", "high", "--amber", "x.json"),
            "--min-caption-score must be a number or 'none'",
            2,
        ),
    ],
)
def test_errors_are_one_line(args, message, code, tmp_path: Path):
    result = run_in_process("report", *args, "-o", str(tmp_path / "r.html"))
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"clipdpo report: error: {message}"), lines


def test_files_of_the_wrong_kind_are_one_line(run, tmp_path: Path):
    from clipdpo_cli.io.errors import InputError

    out = str(tmp_path / "r.html")
    with pytest.raises(InputError, match="no pair records"):
        invoke_cli("report", "--pairs", str(run["rejects"]), "-o", out)
    with pytest.raises(InputError, match="no record has a numeric clip_score or question_score"):
        invoke_cli("report", "--scored", str(run["pairs"]), "-o", out)
    with pytest.raises(InputError, match="not an eval-zeroshot output"):
        invoke_cli("report", "--zeroshot", str(run["pairs"]), "-o", out)


def test_bad_jsonl_line_names_it(tmp_path: Path):
    bad = tmp_path / "scored.jsonl"
    bad.write_text('{"id": 1, "clip_score": 30}\nnot json\n')
    result = run_in_process("report", "--scored", str(bad), "-o", str(tmp_path / "r.html"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"clipdpo report: error: {bad}: line 2: "), lines


def test_missing_matplotlib_is_one_line(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from clipdpo_cli.io.extras import MissingExtra

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    expected = r"needs the report extra \(matplotlib is not installed\): pip install 'clipdpo-cli\[report\]'"
    with pytest.raises(MissingExtra, match=expected):
        invoke_cli("report", "--amber", str(run["amber_base"]), "-o", str(tmp_path / "r.html"))
    assert not (tmp_path / "r.html").exists()


def test_help_is_the_same_from_the_one_command_app_and_imports_no_matplotlib():
    code = (
        "import sys; from typer.testing import CliRunner; from clipdpo_cli.cli import build_app; "
        "one = CliRunner().invoke(build_app('report'), ['report', '--help'], prog_name='clipdpo').output; "
        "full = CliRunner().invoke(build_app(), ['report', '--help'], prog_name='clipdpo').output; "
        "print(one == full, one.split(chr(10))[2].strip()[:15], 'matplotlib' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True
    )
    assert done.stdout.split() == ["True", "clipdpo", "report", "False"]
